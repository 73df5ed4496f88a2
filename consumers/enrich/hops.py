"""Hop verdicts: both axes for one reply address, with the evidence.

The core is pure: :class:`HopRecord` (address, minimum RTT over the hop's replies, the
vantage point) in, :class:`HopVerdict` out. It does not matter whether the records come
from raw Atlas JSON, from ``schemas.normalize`` rows or from ClickHouse.

Rule of the physical axis: a hop is in the US only when a source says so **and** physics
allows it. A US claim that the RTT bound forbids is kept as a *correction* (evidence that
the database is wrong for this address), and the hop is "provably not in the US".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.enrich.geo import GeoClaim, GeoSource, is_public
from consumers.enrich.legal import LegalVerdict, OperatorTable, legal_verdict
from consumers.enrich.physics import UsBound, us_bound, us_territory
from consumers.enrich.vantage import Vantage

# A reply proven not to be in the US but claimed nowhere else is placed in the vantage
# point's country when it came back from within this distance (low confidence).
NEAR_VANTAGE_KM = 300.0


@dataclass(frozen=True, slots=True)
class HopRecord:
    """One reply address at one hop of one traceroute, with its minimum RTT."""

    address: str
    rtt_ms: float | None  # minimum over the hop's replies from this address
    vantage: Vantage | None
    hop: int = 0
    is_destination: bool = False


@dataclass(frozen=True, slots=True)
class PhysicalVerdict:
    country: str  # ISO code, "" when unknown
    confidence: str  # high | medium | low | none
    us_possible: bool | None  # None: physics could not be applied
    bound: UsBound | None
    sources: tuple[GeoClaim, ...]
    corrections: tuple[str, ...] = ()
    note: str = ""

    @property
    def is_us(self) -> bool:
        return self.country == "US"

    def as_dict(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "confidence": self.confidence,
            "us_possible": self.us_possible,
            "bound": self.bound.as_dict() if self.bound else None,
            "sources": [claim.as_dict() for claim in self.sources],
            "corrections": list(self.corrections),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class HopVerdict:
    record: HopRecord
    physical: PhysicalVerdict
    legal: LegalVerdict
    dataset_versions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.record.address,
            "hop": self.record.hop,
            "rtt_ms": self.record.rtt_ms,
            "vantage": self.record.vantage.as_dict() if self.record.vantage else None,
            "physical": self.physical.as_dict(),
            "legal": self.legal.as_dict(),
            "dataset_versions": dict(self.dataset_versions),
        }


def physical_verdict(
    claims: Sequence[GeoClaim], rtt_ms: float | None, vantage: Vantage | None
) -> PhysicalVerdict:
    """Combine the claims of the geo sources with the RTT bound (pure)."""
    bound = None
    if vantage is not None and rtt_ms is not None:
        bound = us_bound(rtt_ms, vantage.latitude, vantage.longitude, vantage.uncertainty_km)
    us_possible = bound.us_possible if bound is not None else None
    corrections = tuple(
        f"{claim.source} ({claim.dataset_version}) places this address in the US, but the "
        f"reply came back in {rtt_ms:.1f} ms, so it is within {bound.bound_km:.0f} km of "
        f"vantage point {vantage.key}, and the nearest US territory is at least "
        f"{bound.us_distance_km:.0f} km away (position uncertainty "
        f"{vantage.uncertainty_km:.0f} km): it is not in the US"
        for claim in claims
        if claim.country == "US" and bound is not None and not bound.us_possible
        and vantage is not None and rtt_ms is not None
    )
    anycast = [claim for claim in claims if claim.anycast]
    for claim in claims:
        if not claim.country:
            continue
        if claim.country == "US" and us_possible is False:
            continue
        if claim.cloud_provider:
            confidence = "high"
        elif bound is not None:
            confidence = "medium"
        else:
            confidence = "low"
        return PhysicalVerdict(claim.country, confidence, us_possible, bound, tuple(claims),
                               corrections)
    if corrections and bound is not None and vantage is not None:
        reach = bound.bound_km + vantage.uncertainty_km
        if vantage.country and reach <= NEAR_VANTAGE_KM:
            return PhysicalVerdict(
                vantage.country, "low", False, bound, tuple(claims), corrections,
                f"provably not in the US; within {reach:.0f} km of vantage point "
                f"{vantage.key} in {vantage.country}, so placed in that country (not proven: "
                "a neighbouring country is also within reach)")
        return PhysicalVerdict("", "none", False, bound, tuple(claims), corrections,
                               f"provably not in the US (within {reach:.0f} km of vantage point "
                               f"{vantage.key}); no source gives another country")
    note = "no source places this address"
    if anycast:
        note = f"{anycast[0].cloud_provider} publishes it as a global (anycast/edge) range"
    return PhysicalVerdict("", "none", us_possible, bound, tuple(claims), (), note)


class Enricher:
    """Geo sources + operators table, with per-address claim caching."""

    def __init__(self, sources: Iterable[GeoSource], operators: OperatorTable) -> None:
        self.sources = tuple(sources)
        self.operators = operators
        self._claims: dict[str, tuple[GeoClaim, ...]] = {}

    def claims(self, address: str) -> tuple[GeoClaim, ...]:
        found = self._claims.get(address)
        if found is None:
            if not is_public(address):
                found = ()
            else:
                found = tuple(
                    claim for source in self.sources
                    if (claim := source.lookup(address)) is not None
                )
            if len(self._claims) > 500_000:
                self._claims.clear()
            self._claims[address] = found
        return found

    def dataset_versions(self) -> dict[str, str]:
        territory = us_territory()
        versions = {source.name: source.version for source in self.sources}
        versions[self.operators.dataset] = self.operators.version
        versions[territory.dataset] = territory.version
        return versions

    def legal(self, address: str) -> LegalVerdict:
        if not is_public(address):
            return LegalVerdict(basis="private or non-global address: the local network")
        return legal_verdict(self.claims(address), self.operators)

    def hop_verdict(self, record: HopRecord) -> HopVerdict:
        if not is_public(record.address):
            physical = PhysicalVerdict(
                "", "none", None, None, (),
                note="private or non-global address: inside a local network, not located",
            )
        else:
            physical = physical_verdict(self.claims(record.address), record.rtt_ms,
                                        record.vantage)
        return HopVerdict(record, physical, self.legal(record.address), self.dataset_versions())
