"""The alert wire model: one :class:`Alert` JSON object per message on
:data:`schemas.topics.ALERTS` (key: the application), per row of the ``alerts`` table and
per webhook delivery.

An alert says that the **jurisdiction state** of one application, seen from one vantage set
over one address family, changed: ``before`` and ``after`` are sets of jurisdictions
(physical: where hops are; legal: whose law applies to their operators) plus the hosting
verdict class. ``version`` grows with every change people should hear about (opened,
widened, resolved, re-opened); deliveries are keyed on ``(alert_id, version)`` so a receiver
can drop a repeat. Paths are forward paths only (vantage point -> application).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AlertStateName = Literal["firing", "resolved"]
FIRING: AlertStateName = "firing"
RESOLVED: AlertStateName = "resolved"

FORWARD_ONLY_NOTE = (
    "Forward paths only: from the vantage point to the application. The return path is "
    "not measured and can differ."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JurisdictionState(_Model):
    """Jurisdictions over every branch of the current paths, and the hosting verdict."""

    physical: list[str] = Field(default_factory=list, description="Where hops physically are.")
    legal: list[str] = Field(default_factory=list, description="Whose law applies to operators.")
    verdict: str = Field("unknown", description="The most serious path verdict class.")
    verdicts: list[str] = Field(default_factory=list, description="Every path verdict class.")


class ResultRef(_Model):
    """Which measurement result showed it (the natural key of ``raw_results``)."""

    source: str
    measurement_id: int
    probe_id: int
    timestamp: dt.datetime
    destination_address: str
    paris_id: int | None = None


class Evidence(_Model):
    """Why: the result, the hop, its RTT bound and the sources that placed it."""

    change: str = Field(description="The jurisdiction this evidence is for, e.g. physical:US.")
    result: ResultRef
    vantage_point: str
    hop: int | None = None
    address: str = ""
    rtt_ms: float | None = None
    bound_km: float | None = Field(None, description="The reply came from within this distance.")
    us_distance_km: float | None = Field(None, description="Nearest US territory from the VP.")
    physical_country: str = ""
    physical_confidence: str = ""
    legal_operator: str = ""
    legal_country: str = ""
    sources: list[str] = Field(default_factory=list, description="source (version): country")
    reason: str = ""


class Confirmation(_Model):
    vantage_points: int = 0
    consecutive_results: int = 0
    flow_ids: int = 0
    rule: str = ""


class Alert(_Model):
    alert_id: str
    version: int = 1
    application: str
    vantage_set: str
    address_family: int
    municipalities: list[str] = Field(default_factory=list)
    criticality: str = "normal"
    severity: str = "warning"
    state: AlertStateName = FIRING
    first_seen: dt.datetime
    last_seen: dt.datetime
    resolved_at: dt.datetime | None = None
    before: JurisdictionState
    after: JurisdictionState
    added: list[str] = Field(default_factory=list, description="Jurisdictions that appeared.")
    removed: list[str] = Field(default_factory=list,
                               description="Jurisdictions of the baseline no longer seen.")
    confirmation: Confirmation = Field(default_factory=Confirmation)
    flaps: int = Field(0, description="Times it came back within the hold-down after resolving.")
    evidence: list[Evidence] = Field(default_factory=list)
    summary: str = ""
    note: str = FORWARD_ONLY_NOTE

    @property
    def delivery_id(self) -> str:
        return f"{self.alert_id}:{self.version}"

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Alert:
        return cls.model_validate_json(data)
