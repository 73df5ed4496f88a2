"""Hop verdicts: both axes for one reply address, with the evidence.

The core is pure: :class:`HopRecord` (address, minimum RTT over the hop's replies, the
vantage point) in, :class:`HopVerdict` out. It does not matter whether the records come
from raw Atlas JSON, from ``schemas.normalize`` rows or from ClickHouse.

Rules of the physical axis (``docs/jurisdiction.md``):

* a claim is kept only when physics allows it: a hop is in the US only when a source says
  so **and** no disc of the address's region (every vantage point's RTT to it in the
  window, ``constraints.AddressRegion``) rules the US out; a claim of any other country
  whose shape no disc reaches is dropped the same way. A dropped claim is kept as a
  *correction* (evidence that the database is wrong for this address);
* when the sources are silent, disagree or were all corrected (or a US claim has a disc of
  at most :data:`CONFIRM_US_KM` to be confirmed by), the address is placed by
  **physics only**: the countries the intersection of its discs can touch
  (``locate.locate``); if they lie in one bloc (EU/EEA, US, elsewhere) that is the hop's
  bloc, with "physics" as the basis;
* a US claim refuted by a later reply on the same path (the end-to-end constraint,
  ``constraints.end_to_end_refutation``) is a correction too (``refuted_us``);
* last, a reply whose claims were all corrected and that physics cannot place in one bloc
  is put in the country of a vantage point it answered from within
  :data:`NEAR_VANTAGE_KM` (low confidence, said to be unproven).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.enrich.constraints import AddressRegion, Observation, Refutation
from consumers.enrich.countries import (
    BLOC_EU_EEA,
    BLOC_US,
    bloc,
    us_codes,
)
from consumers.enrich.countries import dataset_versions as country_versions
from consumers.enrich.geo import GeoClaim, GeoSource, is_public
from consumers.enrich.legal import LegalVerdict, OperatorTable, legal_verdict
from consumers.enrich.physics import UsBound, us_bound
from consumers.enrich.vantage import Vantage

BASIS_SOURCE = "geo source"
BASIS_PHYSICS = "physics"
BASIS_NEAR_VANTAGE = "near the vantage point"
# A reply whose claims were all corrected and that physics cannot place in one bloc is put
# in the country of the vantage point it answered within this distance (low confidence).
NEAR_VANTAGE_KM = 300.0
# A US claim is checked against physics-only location when a disc this small holds the
# address (a confirmation ping from a probe near the claimed place): all of it in the US
# proves the claim.
CONFIRM_US_KM = 500.0
BLOC_WORDS = {BLOC_US: "the US", BLOC_EU_EEA: "the EU/EEA",
              "elsewhere": "outside the EU/EEA and the US"}


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
    country: str  # ISO code, "" when unknown (a bloc may still be known, by physics)
    confidence: str  # high | medium | low | none
    us_possible: bool | None  # None: physics could not be applied
    bound: UsBound | None  # this reply's own RTT bound
    sources: tuple[GeoClaim, ...]
    corrections: tuple[str, ...] = ()
    note: str = ""
    basis: str = ""  # "geo source" | "physics" | "" (unknown)
    bloc: str = ""  # "US" | "EU_EEA" | "elsewhere" | ""
    candidates: tuple[str, ...] = ()  # countries the address's region can touch (physics)
    region: AddressRegion | None = None
    refutation: Refutation | None = None  # end to end, when a US claim was refuted so

    @property
    def is_us(self) -> bool:
        return self.bloc == BLOC_US

    @property
    def where(self) -> str:
        """In words: the country, or the bloc and its candidate countries."""
        if self.country:
            return self.country
        if self.bloc:
            return f"one of {', '.join(self.candidates)} ({BLOC_WORDS.get(self.bloc, self.bloc)})"
        return "unknown"

    def as_dict(self) -> dict[str, Any]:
        location = self.region.location() if self.region is not None and self.candidates \
            else None
        return {
            "country": self.country,
            "bloc": self.bloc,
            "basis": self.basis,
            "confidence": self.confidence,
            "us_possible": self.us_possible,
            "bound": self.bound.as_dict() if self.bound else None,
            "sources": [claim.as_dict() for claim in self.sources],
            "corrections": list(self.corrections),
            "note": self.note,
            "candidates": list(self.candidates),
            "location": location.as_dict() if location is not None else None,
            "region": self.region.as_dict() if self.region is not None else None,
            "end_to_end": self.refutation.as_dict() if self.refutation else None,
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


def _own_region(address: str, rtt_ms: float | None,
                vantage: Vantage | None) -> AddressRegion | None:
    if vantage is None or rtt_ms is None or rtt_ms < 0:
        return None
    return AddressRegion(address, (Observation(address, vantage, rtt_ms, "this reply"),))


def _disc_words(observation: Observation) -> str:
    return (f"it answered vantage point {observation.vantage.key} in "
            f"{observation.rtt_ms:.1f} ms ({observation.origin or 'this reply'}), so it is "
            f"within {observation.reach_km:.0f} km of that vantage point (position: "
            f"{observation.vantage.basis}, uncertainty {observation.vantage.uncertainty_km:.0f}"
            " km)")


def _claim_correction(claim: GeoClaim, region: AddressRegion | None,
                      refuted_us: Refutation | None) -> str:
    """Why physics rules this claim out, or "" when it allows it."""
    said = f"{claim.source} ({claim.dataset_version}) places this address in {claim.country}"
    if claim.country in us_codes():
        if refuted_us is not None:
            return f"{said}, but {refuted_us.sentence()}"
        refuter = region.us_refuter() if region is not None else None
        if refuter is not None:
            return (f"{said}, but {_disc_words(refuter)}, and the nearest US territory is at "
                    f"least {refuter.us_distance_km() + refuter.reach_km:.0f} km from it: "
                    "it is not in the US")
        return ""
    if region is None:
        return ""
    distance, refuter = region.country_distance_km(claim.country)
    if distance > 0 and refuter is not None:
        return (f"{said}, but {_disc_words(refuter)}, and {claim.country} is at least "
                f"{distance + refuter.reach_km:.0f} km from it: it is not in "
                f"{claim.country}")
    return ""


def physical_verdict(
    claims: Sequence[GeoClaim], rtt_ms: float | None, vantage: Vantage | None,
    region: AddressRegion | None = None, refuted_us: Refutation | None = None,
) -> PhysicalVerdict:
    """Combine the claims of the geo sources with physics (pure). ``region`` is the
    address's region in the window (default: this reply's own disc)."""
    bound = us_bound(rtt_ms, vantage) if vantage is not None and rtt_ms is not None else None
    region = region if region is not None else _own_region("", rtt_ms, vantage)
    us_possible = None if region is None else (refuted_us is None
                                                and region.us_refuter() is None)
    corrections: list[str] = []
    kept: list[GeoClaim] = []
    for claim in claims:
        if not claim.country or not claim.country.isalpha():
            continue  # no country ("--" is geoip2fast's "not known")
        why = _claim_correction(claim, region, refuted_us)
        if why:
            corrections.append(why)
        else:
            kept.append(claim)
    countries = list(dict.fromkeys(claim.country for claim in kept))
    confirm = (len(countries) == 1 and bloc(countries[0]) == BLOC_US and region is not None
               and region.observations[0].radius_km <= CONFIRM_US_KM)
    located = region.location() if region is not None and (len(countries) != 1 or confirm) \
        else None
    candidates: tuple[str, ...] = ()
    if located is not None and not located.empty:
        # the per-disc bound is a proof too: it takes the US out of the candidates
        candidates = tuple(sorted(located.countries - (us_codes() if us_possible is False
                                                       else frozenset())))
    if candidates and region is not None:
        blocs = {bloc(code) for code in candidates}
        for claim in list(kept):
            if claim.country not in candidates:
                kept.remove(claim)
                corrections.append(
                    f"{claim.source} ({claim.dataset_version}) places this address in "
                    f"{claim.country}, but the intersection of its {len(region.observations)} "
                    f"RTT disc(s) touches only {', '.join(candidates)}")
        if us_possible is not False and not blocs & {BLOC_US}:
            us_possible = False
        if len(blocs) == 1:
            (only,) = blocs
            country = candidates[0] if len(candidates) == 1 else next(
                (c.country for c in kept), "US" if only == BLOC_US else "")
            return PhysicalVerdict(
                country, region.vantage_confidence(), us_possible, bound, tuple(claims),
                tuple(corrections), f"every point within all its {len(region.observations)} "
                f"RTT disc(s) lies in {', '.join(candidates)}: "
                f"{BLOC_WORDS.get(only, only)}",
                BASIS_PHYSICS, only, candidates, region, refuted_us)
        countries = list(dict.fromkeys(claim.country for claim in kept))
    if countries:
        claim = next(c for c in kept if c.country == countries[0])
        if claim.cloud_provider:
            confidence = "high"
        elif region is not None:
            confidence = "medium"
        else:
            confidence = "low"
        note = "" if len(countries) == 1 else (
            f"sources disagree ({', '.join(countries)}); physics cannot decide, the first "
            "source is used")
        return PhysicalVerdict(claim.country, confidence, us_possible, bound, tuple(claims),
                               tuple(corrections), note, BASIS_SOURCE, bloc(claim.country),
                               (), region, refuted_us)
    anycast = [claim for claim in claims if claim.anycast]
    nearest = region.observations[0] if region is not None and region.observations else None
    if (corrections and nearest is not None and nearest.vantage.country
            and nearest.radius_km <= NEAR_VANTAGE_KM
            and (not candidates or nearest.vantage.country in candidates)
            and not (us_possible is False and bloc(nearest.vantage.country) == BLOC_US)):
        country = nearest.vantage.country
        return PhysicalVerdict(
            country, "low", us_possible, bound, tuple(claims), tuple(corrections),
            f"not placed by physics alone (it can touch {', '.join(candidates) or '?'}); "
            f"within {nearest.radius_km:.0f} km of vantage point {nearest.vantage.key} in "
            f"{country}, so placed in that country (not proven: a neighbouring country is "
            "also within reach)", BASIS_NEAR_VANTAGE, bloc(country), candidates, region,
            refuted_us)
    if corrections or us_possible is False:
        reach = f"within {region.observations[0].radius_km:.0f} km of vantage point " \
            f"{region.observations[0].vantage.key}" if region is not None else ""
        note = f"provably not in the US ({reach}); no source gives another country"
        if located is not None and located.empty:
            note += "; its RTT discs do not intersect (not one place)"
        return PhysicalVerdict("", "none", us_possible, bound, tuple(claims),
                               tuple(corrections), note, "", "", (), region, refuted_us)
    note = "no source places this address"
    if anycast:
        note = f"{anycast[0].cloud_provider} publishes it as a global (anycast/edge) range"
    return PhysicalVerdict("", "none", us_possible, bound, tuple(claims), (), note, "", "", (),
                           region, refuted_us)


class Enricher:
    """Geo sources + operators table, with per-address claim caching."""

    def __init__(self, sources: Iterable[GeoSource], operators: OperatorTable) -> None:
        self.sources = tuple(sources)
        self.operators = operators
        self._claims: dict[str, tuple[GeoClaim, ...]] = {}
        self._versions: dict[str, str] | None = None

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

    def prime(self, claims: Mapping[str, tuple[GeoClaim, ...]]) -> None:
        """Fill the claim cache with claims looked up elsewhere (ClickHouse's dictionaries,
        ``consumers.claim_tables``): they must equal what :meth:`claims` would find."""
        if len(self._claims) + len(claims) > 500_000:
            self._claims.clear()
        self._claims.update(claims)

    def uncached(self, addresses: Iterable[str]) -> list[str]:
        """The distinct ``addresses`` whose claims are not cached yet."""
        return [a for a in dict.fromkeys(addresses) if a not in self._claims]

    def dataset_versions(self) -> dict[str, str]:
        versions = {source.name: source.version for source in self.sources}
        versions[self.operators.dataset] = self.operators.version
        versions.update(country_versions())
        return versions

    def legal(self, address: str) -> LegalVerdict:
        if not is_public(address):
            return LegalVerdict(basis="private or non-global address: the local network")
        return legal_verdict(self.claims(address), self.operators)

    def hop_verdict(self, record: HopRecord, region: AddressRegion | None = None,
                    refuted_us: Refutation | None = None) -> HopVerdict:
        """Both axes for one reply; ``region`` is the address's region in the window (every
        vantage point's RTT to it), ``refuted_us`` an end-to-end refutation of a US claim."""
        if not is_public(record.address):
            physical = PhysicalVerdict(
                "", "none", None, None, (),
                note="private or non-global address: inside a local network, not located",
            )
        else:
            physical = physical_verdict(self.claims(record.address), record.rtt_ms,
                                        record.vantage, region, refuted_us)
        if self._versions is None:
            self._versions = self.dataset_versions()
        return HopVerdict(record, physical, self.legal(record.address), self._versions)
