"""The wire model of a path-graph finding (topic :data:`schemas.topics.FINDINGS`, table
``findings``).

A finding is one conclusion of a detector in ``consumers/graph`` about one destination (or
hop) over one time window, with the evidence that supports it. ``finding_id`` is stable:
the same conclusion about the same thing in the same window gets the same id, so a replayed
window replaces its row (ReplacingMergeTree) instead of doubling it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

FindingKind = Literal["load_balancer", "route_change", "anycast", "us_transit"]
FINDING_KINDS: tuple[str, ...] = ("load_balancer", "route_change", "anycast", "us_transit")


def finding_id(kind: str, *parts: object) -> str:
    """A stable id: the hash of the kind and what identifies the conclusion."""
    text = orjson.dumps([kind, *[str(part) for part in parts]])
    return hashlib.sha256(text).hexdigest()[:24]


class Finding(BaseModel):
    """One detector conclusion with its evidence (JSON-serialisable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    finding_id: str = Field(min_length=1, max_length=64)
    kind: FindingKind
    destination_address: str = Field(description="Destination the paths lead to ('' = none).")
    subject: str = Field(description="What the finding is about: an interface, an address.")
    destination_name: str = ""
    applications: tuple[str, ...] = ()
    vantage_keys: tuple[str, ...] = ()
    window_start: dt.datetime
    window_end: dt.datetime
    confidence: Literal["high", "medium", "low"]
    summary: str = Field(description="One sentence for people.")
    evidence: dict[str, Any] = Field(default_factory=dict)

    def key(self) -> bytes:
        """Message key: the first application, else the destination."""
        return (self.applications[0] if self.applications else self.destination_address
                or self.subject).encode()

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Finding:
        return cls.model_validate_json(data)
