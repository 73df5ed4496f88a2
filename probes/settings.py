"""The ``[probe]`` settings section: who this vantage point is and how it may measure, and
:func:`task_options`, which holds every task to those limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, field_validator

from probes.safety import MIN_PAYLOAD_SIZE
from schemas.errors import InvalidTaskOptions
from schemas.tasks import ProbeTask
from schemas.vantage import SELF_HOSTED_PROBE_ID_MAX, SELF_HOSTED_PROBE_ID_MIN


class ScheduledTask(BaseModel):
    """A task the agent runs on its own every ``interval_s`` seconds (local schedule)."""

    interval_s: float = Field(gt=0, description="Seconds between runs.")
    task: ProbeTask


class ProbeSettings(BaseModel):
    enabled: bool = Field(default=False, description="`grenswacht run` starts a local probe agent.")
    name: str = Field(default="local", min_length=1, description="Vantage point name (`gw_vp`).")
    probe_id: int | None = Field(
        default=None,
        ge=SELF_HOSTED_PROBE_ID_MIN,
        le=SELF_HOSTED_PROBE_ID_MAX,
        description="`prb_id` in results; default derived from the name (self-hosted range).",
    )
    city: str = Field(default="", description="City of the vantage point.")
    country: str = Field(default="NL", description="ISO country code of the vantage point.")
    latitude: float | None = Field(default=None, ge=-90, le=90, description="Latitude (degrees).")
    longitude: float | None = Field(
        default=None, ge=-180, le=180, description="Longitude (degrees)."
    )
    asn: int | None = Field(
        default=None, ge=0, description="AS number of the vantage point's network."
    )
    public_address: str = Field(
        default="", description="`from` in results; default the source address."
    )
    netns: str = Field(
        default="", description="Run probes inside this network namespace (needs CAP_SYS_ADMIN)."
    )
    allow: list[str] = Field(
        default_factory=list,
        description="Networks always allowed as targets (e.g. a lab network).",
    )
    deny: list[str] = Field(default_factory=list, description="Networks never probed.")
    probes_per_second: float = Field(
        default=200.0, ge=0, description="Cap on probe packets per second (0 = no cap)."
    )
    concurrency: int = Field(default=4, ge=1, le=64, description="Tasks run at the same time.")
    target_interval_s: float = Field(
        default=1.0, ge=0, description="Least time between two measurements of one target."
    )
    timeout_s: float = Field(default=1.0, gt=0, le=10, description="Wait for one probe's answer.")
    max_hops: int = Field(default=32, ge=1, le=64, description="Highest TTL a traceroute tries.")
    packets: int = Field(default=3, ge=1, le=16, description="Packets per hop (traceroute).")
    gap_limit: int = Field(
        default=5, ge=1, le=64, description="Stop after this many hops in a row without an answer."
    )
    payload_size: int = Field(
        default=48, ge=MIN_PAYLOAD_SIZE, le=1400, description="UDP probe payload bytes."
    )
    mda_confidence: float = Field(
        default=0.95,
        description="MDA confidence of the whole run (every successor of every vertex): "
        "0.95 or 0.99.",
    )
    mda_max_flows: int = Field(
        default=256, ge=8, le=4096, description="Most flow ids one MDA run uses."
    )
    resolvers: list[str] = Field(
        default_factory=list, description="DNS resolvers to ask; empty = the system's."
    )
    dns_timeout_s: float = Field(default=3.0, gt=0, description="Wait for one DNS answer.")
    scamper: str = Field(default="scamper", description="scamper executable (ICMP/TCP traceroute).")
    group: str = Field(default="grenswacht-probe", description="Consumer group prefix for tasks.")
    health_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between health reports."
    )
    schedule: list[ScheduledTask] = Field(
        default_factory=list, description="Local schedule (tasks run without a scheduler)."
    )

    @field_validator("mda_confidence")
    @classmethod
    def _confidence(cls, value: float) -> float:
        if value not in (0.95, 0.99):
            raise ValueError("mda_confidence must be 0.95 or 0.99")
        return value

    def location(self) -> dict[str, Any]:
        """The vantage point's declared place and network (``gw_vp_location`` in results)."""
        return {
            "city": self.city,
            "country": self.country,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "asn": self.asn,
        }


# -- task options: what a task may ask, held to the agent's settings -----------------------

MIN_TIMEOUT_S = 0.01
MAX_RESOLVERS = 8
MAX_QUERY_TYPES = 8
SEED_MAX = 2**32 - 1
OPTIONS_BY_KIND: dict[str, frozenset[str]] = {
    "traceroute": frozenset({"max_hops", "packets", "gap_limit", "timeout_s", "size", "port"}),
    "mda": frozenset({"max_hops", "gap_limit", "timeout_s", "size", "confidence",
                      "max_flows", "seed"}),
    "dns": frozenset({"resolvers", "query_types", "timeout_s", "port"}),
}


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """The options a runner uses: the task's, or the setting where the task gives none, and
    never more than the setting (``clamped`` names those lowered to it)."""

    max_hops: int
    packets: int
    gap_limit: int
    timeout_s: float
    size: int
    confidence: float
    max_flows: int
    seed: int | None
    port: int | None
    resolvers: tuple[str, ...]
    query_types: tuple[str, ...]
    clamped: tuple[str, ...] = ()


def _number(name: str, value: Any, *, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTaskOptions(f"option {name!r} must be a number, not {value!r:.40}")
    if not math.isfinite(value) or (integer and value != int(value)):
        raise InvalidTaskOptions(f"option {name!r} must be a whole number, not {value!r:.40}")
    return value


def _strings(name: str, value: Any, most: int) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidTaskOptions(f"option {name!r} must be a list of strings")
    if not 1 <= len(value) <= most:
        raise InvalidTaskOptions(f"option {name!r} takes 1 to {most} entries, not {len(value)}")
    return tuple(value)


def task_options(task: ProbeTask, settings: ProbeSettings) -> TaskOptions:
    """Resolve and hold a task's options to this vantage point's settings.

    A task may ask for less than a setting, never more: ``max_hops``, ``packets``,
    ``gap_limit``, ``timeout_s`` (``dns_timeout_s`` for DNS), ``size`` (``payload_size``),
    ``max_flows`` (``mda_max_flows``) and ``confidence`` (``mda_confidence``) above the
    setting are lowered to it. Unknown options, values of the wrong type, values below the
    least sensible one (a TTL of 0, a payload without room for the marker) and DNS lists
    longer than :data:`MAX_RESOLVERS` / :data:`MAX_QUERY_TYPES` raise
    :class:`InvalidTaskOptions` (the agent counts the task as malformed).
    """
    options = task.options
    unknown = sorted(set(options) - OPTIONS_BY_KIND[task.kind])
    if unknown:
        known = ", ".join(sorted(OPTIONS_BY_KIND[task.kind]))
        raise InvalidTaskOptions(f"unknown {task.kind} option(s) {unknown}; known: {known}")
    clamped: list[str] = []
    timeout_cap = settings.dns_timeout_s if task.kind == "dns" else settings.timeout_s

    def capped(name: str, cap: float, least: float, *, integer: bool = True) -> Any:
        if name not in options:
            return cap
        value = _number(name, options[name], integer=integer)
        if value < least:
            raise InvalidTaskOptions(f"option {name!r} = {value} is below {least}")
        if value > cap:
            clamped.append(name)
            value = cap
        return int(value) if integer else float(value)

    confidence = settings.mda_confidence
    if "confidence" in options:
        asked = _number("confidence", options["confidence"], integer=False)
        if asked not in (0.95, 0.99):
            raise InvalidTaskOptions(f"option 'confidence' must be 0.95 or 0.99, not {asked}")
        if asked > confidence:
            clamped.append("confidence")
        confidence = min(asked, confidence)
    seed = options.get("seed")
    if seed is not None:
        seed = int(_number("seed", seed, integer=True))
        if not 0 <= seed <= SEED_MAX:
            raise InvalidTaskOptions(f"option 'seed' must be 0 to {SEED_MAX}")
    port = options.get("port")
    if port is not None:
        port = int(_number("port", port, integer=True))
        if not 1 <= port <= 65535:
            raise InvalidTaskOptions(f"option 'port' must be 1 to 65535, not {port}")
    resolvers = tuple(settings.resolvers)
    if "resolvers" in options:
        resolvers = _strings("resolvers", options["resolvers"], MAX_RESOLVERS)
    query_types: tuple[str, ...] = ("A", "AAAA")
    if "query_types" in options:
        query_types = _strings("query_types", options["query_types"], MAX_QUERY_TYPES)
        if not all(t.isalnum() and len(t) <= 10 for t in query_types):
            raise InvalidTaskOptions(f"option 'query_types' holds a bad type: {query_types}")
    return TaskOptions(
        max_hops=capped("max_hops", settings.max_hops, 1),
        packets=capped("packets", settings.packets, 1),
        gap_limit=capped("gap_limit", settings.gap_limit, 1),
        timeout_s=capped("timeout_s", timeout_cap, MIN_TIMEOUT_S, integer=False),
        size=capped("size", settings.payload_size, MIN_PAYLOAD_SIZE),
        confidence=confidence,
        max_flows=capped("max_flows", settings.mda_max_flows, 1),
        seed=seed,
        port=port,
        resolvers=resolvers,
        query_types=query_types,
        clamped=tuple(clamped),
    )
