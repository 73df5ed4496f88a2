"""The path-verdict message (topic :data:`schemas.topics.VERDICTS`): what the analysis
computed for the paths of one window, for readers that must not derive verdicts again
(the alerts component).

One message per analysed window and measured target (``dst_name``, else ``dst_addr``; the
message key), at most :data:`MAX_PATHS` paths each. A window analysed again (more results
arrived) publishes its paths again: readers keep per-series event time and ignore paths
they have seen. Every path carries its class, its home set (``''`` = a reference vantage
point), the applications it belongs to and its located hops with the evidence (RTT, the
physics bound, the geo sources), so a reader can explain a change without re-deriving it.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

MESSAGE_VERSION = 1
MAX_PATHS = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HopMessage(_Model):
    """One located reply (a public address with a physical or legal verdict)."""

    hop: int
    address: str
    is_destination: bool = False
    rtt_ms: float | None = None
    physical_country: str = ""
    physical_confidence: str = ""
    us_possible: bool | None = None
    bound_km: float | None = None
    us_distance_km: float | None = None
    legal_operator: str = ""
    legal_parent: str = ""
    legal_country: str = ""
    sources: list[str] = Field(default_factory=list, description="source (version): country")
    note: str = ""


class PathMessage(_Model):
    source: str
    measurement_id: int
    probe_id: int
    timestamp: dt.datetime
    destination_address: str
    destination_name: str = ""
    vantage_key: str
    vantage_country: str = ""
    home_set: str = Field("", description="consumers.home: '' = a reference vantage point.")
    address_family: int = 4
    flow_id: int | None = Field(None, description="paris_id of a traceroute.")
    kind: str = Field("traceroute", description="traceroute, or mda (every branch).")
    verdict: str
    confidence: str = "none"
    anycast: bool = False
    applications: list[str] = Field(default_factory=list)
    why: str = ""
    reasons: list[str] = Field(default_factory=list)
    us_hops: list[int] = Field(default_factory=list, description="hop numbers placed in the US")
    hops: list[HopMessage] = Field(default_factory=list, description="located replies, the "
                                   "destination's verdict last")

    @property
    def target(self) -> str:
        return self.destination_name.strip().lower().rstrip(".") or self.destination_address


class VerdictMessage(_Model):
    version: int = MESSAGE_VERSION
    window_start: dt.datetime
    window_end: dt.datetime
    computed_at: dt.datetime
    target: str
    paths: list[PathMessage] = Field(max_length=MAX_PATHS)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> VerdictMessage:
        return cls.model_validate_json(data)
