"""Probe tasks: what the scheduler asks a self-hosted vantage point to measure.

Published on :data:`schemas.topics.PROBE_TASKS`, keyed by vantage point name, value the
JSON of :class:`ProbeTask`. ``vantage_point="*"`` means any agent that reads the topic.

Tasks the scheduler plans for self-hosted vantage sets carry a ``msm_id`` in
``[SELF_HOSTED_MSM_ID_MIN, SELF_HOSTED_MSM_ID_MIN + SELF_HOSTED_MSM_ID_SPAN)``, derived from
the series key (:func:`series_measurement_id`), so every result of one series (one target,
kind, protocol, family and vantage point) shares one measurement id and never collides with
a RIPE Atlas id (below 200,000,000 today).
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskKind = Literal["traceroute", "dns", "mda"]
Protocol = Literal["udp", "icmp", "tcp"]
ANY_VANTAGE_POINT = "*"
SELF_HOSTED_MSM_ID_MIN = 1_000_000_000
SELF_HOSTED_MSM_ID_SPAN = 1_000_000_000


def series_measurement_id(series_key: str) -> int:
    """The stable ``msm_id`` of a self-hosted task series."""
    return SELF_HOSTED_MSM_ID_MIN + zlib.crc32(series_key.encode()) % SELF_HOSTED_MSM_ID_SPAN


class ProbeTask(BaseModel):
    """One measurement for one vantage point.

    * ``traceroute`` / ``mda``: ``target`` is a hostname or address; ``af`` picks the
      family when a name is resolved; ``paris_id`` is the flow id (traceroute; echoed by
      mda, which draws its flows from a seed).
    * ``dns``: ``target`` is the name to resolve.

    ``options`` (all optional; the agent's ``[probe]`` setting in brackets is the default
    and the ceiling — more is lowered to it, see ``probes.settings.task_options``):

    * traceroute: ``max_hops`` [max_hops], ``packets`` [packets], ``gap_limit``
      [gap_limit], ``timeout_s`` [timeout_s], ``size`` (UDP payload bytes, at least 17)
      [payload_size], ``port`` (TCP destination port, default 443).
    * mda: ``max_hops``, ``gap_limit``, ``timeout_s``, ``size`` as above, ``confidence``
      (0.95 or 0.99, of the whole run) [mda_confidence], ``max_flows`` [mda_max_flows],
      ``seed`` (0 to 2**32 - 1: the ``flow_seed`` of an earlier result, to replay it;
      default a fresh random seed).
    * dns: ``resolvers`` (1 to 8 addresses; default the configured or system resolvers,
      each checked by the target policy), ``query_types`` (1 to 8, default
      ``["A", "AAAA"]``), ``timeout_s`` [dns_timeout_s], ``port`` (default 53).

    Any other key, a value of the wrong type or below the least sensible value makes the
    task malformed: the agent counts it and runs nothing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(min_length=1, max_length=200)
    kind: TaskKind
    target: str = Field(min_length=1, max_length=255)
    protocol: Protocol = "udp"
    af: Literal[4, 6] = 4
    paris_id: int = Field(default=0, ge=0, le=4095)
    vantage_point: str = ANY_VANTAGE_POINT
    msm_id: int = Field(default=0, ge=0)
    options: dict[str, Any] = Field(default_factory=dict)
    not_after: float | None = Field(
        default=None, ge=0, description="Unix time after which the task is stale (skipped)."
    )

    def for_vantage_point(self, name: str) -> bool:
        return self.vantage_point in (ANY_VANTAGE_POINT, name)

    def expired(self, now: float) -> bool:
        """A task that waited on the topic past its round (an agent that was down) is not
        run late: the next round's task comes."""
        return self.not_after is not None and now > self.not_after

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ProbeTask:
        return cls.model_validate_json(data)
