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
      family when a name is resolved; ``paris_id`` is the flow id (traceroute) or the first
      flow id (mda); ``options`` may hold ``max_hops``, ``timeout_s``, ``packets``,
      ``confidence`` (mda: 0.95 or 0.99), ``size``.
    * ``dns``: ``target`` is the name to resolve; ``options`` may hold ``resolvers`` (list
      of addresses; default: the vantage point's configured or system resolvers) and
      ``query_types`` (default ``["A", "AAAA"]``).
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
