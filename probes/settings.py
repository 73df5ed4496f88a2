"""The ``[probe]`` settings section: who this vantage point is and how it may measure."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

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
    payload_size: int = Field(default=48, ge=16, le=1400, description="UDP probe payload bytes.")
    mda_confidence: float = Field(default=0.95, description="MDA confidence: 0.95 or 0.99.")
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
