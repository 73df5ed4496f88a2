"""Path verdicts in the six classes of the research that motivated grenswacht.

Paths are **forward paths only** (vantage point -> destination); the way back can differ
and is not measured. Pure functions over hop verdicts from ``consumers.enrich``; the
application verdict over many paths is :mod:`consumers.applications` (``docs/verdicts.md``).

Classes, most serious first:

* ``hosted_in_us`` — the destination is physically in the US;
* ``routed_via_us`` — the destination is not, but a hop on the way is (a load-balanced
  path counts when any branch is: an MDA result is one path over all its branches);
* ``us_operated_in_eu`` — in the EU/EEA, but the operator's parent is a US company
  (CLOUD Act);
* ``elsewhere`` — hosted outside the EU/EEA and the US, or in the EU by a non-EU,
  non-US operator;
* ``eu_hosted_eu_operated`` — in the EU/EEA and operated by an EU/EEA company;
* ``unknown`` — the sources cannot place the destination.

**Anycast is not a class**: it is an attribute of a path (:attr:`PathVerdict.anycast`, set
from the path graph's anycast finding). An anycast destination is placed by the vantage
point's own RTT disc (the site *this* vantage point reaches), never by combining the discs
of several vantage points (``consumers.enrich.window.place_anycast``). Stores written before
this rule may hold the old class ``anycast``; :func:`normalise_class` reads it as
``unknown`` with the anycast flag, and the analysis recomputes such windows
(``consumers.pipeline.PIPELINE_VERSION``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from consumers.enrich.countries import BLOC_EU_EEA, EU_EEA
from consumers.enrich.hops import BASIS_PHYSICS, HopVerdict
from consumers.enrich.legal import LegalVerdict

__all__ = ["EU_EEA"]  # re-exported: the blocs live with the country shapes

HOSTED_IN_US = "hosted_in_us"
ROUTED_VIA_US = "routed_via_us"
US_OPERATED_IN_EU = "us_operated_in_eu"
ELSEWHERE = "elsewhere"
EU_HOSTED_EU_OPERATED = "eu_hosted_eu_operated"
UNKNOWN = "unknown"
LEGACY_ANYCAST = "anycast"  # a class before anycast became a flag: read as unknown

VERDICT_CLASSES = (
    HOSTED_IN_US, ROUTED_VIA_US, US_OPERATED_IN_EU, ELSEWHERE, EU_HOSTED_EU_OPERATED, UNKNOWN,
)
SEVERITY = {name: len(VERDICT_CLASSES) - i for i, name in enumerate(VERDICT_CLASSES)}
SEVERITY[UNKNOWN] = 0
US_CLASSES = frozenset({HOSTED_IN_US, ROUTED_VIA_US})

DESCRIPTIONS = {
    HOSTED_IN_US: "hosted in the United States",
    ROUTED_VIA_US: "routed via the United States",
    US_OPERATED_IN_EU: "US-operated in the EU (US law applies: CLOUD Act)",
    ELSEWHERE: "hosted or operated outside the EU and the US",
    EU_HOSTED_EU_OPERATED: "EU-hosted and EU-operated",
    UNKNOWN: "unknown: the sources cannot place it",
}

FORWARD_ONLY_NOTE = (
    "Forward paths only: from the vantage point to the application. The return path is "
    "not measured and can differ."
)


_RANK = {"high": 3, "medium": 2, "low": 1, "none": 0}


def normalise_class(name: str) -> str:
    """A stored class name in today's six (``anycast`` of older stores -> ``unknown``)."""
    return name if name in SEVERITY else UNKNOWN


def confidence_rank(level: str) -> int:
    return _RANK.get(level, 0)


@dataclass(frozen=True, slots=True)
class PathVerdict:
    verdict: str
    destination: HopVerdict
    us_hops: tuple[HopVerdict, ...]
    corrections: int
    reasons: tuple[str, ...]
    confidence: str
    anycast: bool = False
    why: str = ""  # one line for people (docs/verdicts.md)
    refutations: tuple[dict[str, Any], ...] = ()  # end-to-end constraints that refuted a hop

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "description": DESCRIPTIONS[self.verdict],
            "confidence": self.confidence,
            "anycast": self.anycast,
            "why": self.why,
            "reasons": list(self.reasons),
            "destination": self.destination.as_dict(),
            "us_hops": [hop.as_dict() for hop in self.us_hops],
            "corrections": self.corrections,
            "end_to_end": list(self.refutations),
            "note": FORWARD_ONLY_NOTE,
        }


def _with_named_operator(destination: HopVerdict, named: LegalVerdict | None) -> HopVerdict:
    """The operator a CNAME chain names (``consumers.enrich.cname``) stands in for an
    operator the address sources do not know, or know only by registration country."""
    if named is None or confidence_rank(destination.legal.confidence) >= confidence_rank(
            named.confidence):
        return destination
    return replace(destination, legal=named)


def classify_path(
    hops: Sequence[HopVerdict], destination: HopVerdict, *, anycast: bool = False,
    named_operator: LegalVerdict | None = None,
) -> PathVerdict:
    """The class of one forward path. ``hops`` are the replies on the way (not the
    destination); ``anycast`` comes from the path graph's anycast finding;
    ``named_operator`` is the provider the application's CNAME chain names."""
    destination = _with_named_operator(destination, named_operator)
    us_hops = tuple(hop for hop in hops if hop.physical.is_us)
    corrections = sum(len(hop.physical.corrections) for hop in (*hops, destination))
    refutations = tuple(hop.physical.refutation.as_dict() for hop in (*hops, destination)
                        if hop.physical.refutation is not None)
    physical = destination.physical
    legal = destination.legal
    reasons: list[str] = []
    where = physical.where
    if physical.is_us:
        verdict = HOSTED_IN_US
        reasons.append(f"destination {destination.record.address} is placed in {where} by "
                       f"{_source_names(destination)}" + ("" if physical.basis == BASIS_PHYSICS
                                                          else " and physics allows it"))
    elif us_hops:
        verdict = ROUTED_VIA_US
        reasons.extend(
            f"hop {hop.record.hop} ({hop.record.address}, {hop.record.rtt_ms} ms) is placed in "
            f"{hop.physical.where} by {_source_names(hop)}"
            + ("" if hop.physical.basis == BASIS_PHYSICS else " and physics allows it")
            for hop in us_hops
        )
    elif not physical.bloc:
        verdict = UNKNOWN
        reasons.append(f"no source places destination {destination.record.address}"
                       + (f" ({physical.note})" if physical.note else ""))
    elif physical.bloc == BLOC_EU_EEA:
        if legal.country == "US":
            verdict = US_OPERATED_IN_EU
            reasons.append(f"hosted in {where}, operated by {legal.operator} "
                           f"whose parent {legal.parent or legal.operator} is in the US")
        elif legal.country in EU_EEA:
            verdict = EU_HOSTED_EU_OPERATED
            reasons.append(f"hosted in {where}, operated by {legal.operator} "
                           f"({legal.country})")
        elif legal.country:
            verdict = ELSEWHERE
            reasons.append(f"hosted in {where}, operated from {legal.country}")
        else:
            verdict = UNKNOWN
            reasons.append(f"hosted in {where}, operator unknown")
    else:
        verdict = ELSEWHERE
        reasons.append(f"destination is in {where}")
    if anycast:
        reasons.append("anycast (path-graph finding): placed by this vantage point's own RTT, "
                       "the site it reaches")
    if physical.basis == BASIS_PHYSICS and not physical.is_us:
        reasons.append(f"located by physics alone: {physical.note}")
    if corrections:
        reasons.append(f"{corrections} geo-database claim(s) were contradicted by RTT physics "
                       "and corrected")
    reasons.extend(f"hop {r['claimed_hop']} ({r['claimed_address']}) is not in the US: hop "
                   f"{r['later_hop']} answered within {r['later_rtt_ms']} ms, a detour through "
                   f"the US needs at least {r['required_ms']} ms" for r in refutations)
    confidence = _path_confidence(verdict, destination, us_hops)
    why = path_why(verdict, destination, us_hops, anycast=anycast)
    return PathVerdict(verdict, destination, us_hops, corrections, tuple(reasons), confidence,
                       anycast, why, refutations)


def _source_names(hop: HopVerdict) -> str:
    if hop.physical.basis == BASIS_PHYSICS:
        return "physics (the intersection of its RTT discs)"
    names = sorted({c.source for c in hop.physical.sources if c.country == hop.physical.country})
    return ", ".join(names) or "no source"


def _vantage_words(hop: HopVerdict) -> str:
    vantage = hop.record.vantage
    if vantage is None:
        return "an unlocated vantage point"
    where = f", {vantage.country}" if vantage.country else ""
    return f"{vantage.key}{where}"


def _physics_words(hop: HopVerdict) -> str:
    bound = hop.physical.bound
    if bound is None or hop.record.rtt_ms is None:
        return "no RTT from a located vantage point checks it"
    if not bound.us_possible:
        return (f"provably not in the US: {hop.record.rtt_ms:.1f} ms from "
                f"{_vantage_words(hop)} (within {bound.bound_km:.0f} km)")
    return f"physics allows it: {hop.record.rtt_ms:.1f} ms from {_vantage_words(hop)}"


def _operator_words(legal: LegalVerdict) -> str:
    who = legal.parent or legal.operator or "unknown operator"
    if legal.operator and legal.parent and legal.parent != legal.operator:
        who = f"{legal.operator}, {legal.parent}"
    return who


def path_why(verdict: str, destination: HopVerdict, us_hops: Sequence[HopVerdict], *,
             anycast: bool = False) -> str:
    """One line of why, e.g. ``US-operated (Amazon Web Services, Amazon.com, Inc., CLOUD
    Act); hosted in DE — provably not in the US: 7.2 ms from atlas:6012, NL``."""
    physical, legal = destination.physical, destination.legal
    site = "anycast, the site this vantage point reaches: " if anycast else ""
    if verdict == HOSTED_IN_US:
        return (f"hosted in the US: {site}{destination.record.address} placed in the US by "
                f"{_source_names(destination)}; {_physics_words(destination)}")
    if verdict == ROUTED_VIA_US:
        hop = us_hops[0]
        return (f"routed via the US: hop {hop.record.hop} {hop.record.address} "
                f"({hop.legal.operator or '?'}) placed in the US by {_source_names(hop)}; "
                f"{_physics_words(hop)}")
    if verdict == UNKNOWN:
        return (f"cannot be placed: {destination.record.address}"
                + (f" ({physical.note})" if physical.note else ""))
    where = f"hosted in {site}{physical.where} — {_physics_words(destination)}"
    if verdict == US_OPERATED_IN_EU:
        return f"US-operated ({_operator_words(legal)}, CLOUD Act); {where}"
    if verdict == EU_HOSTED_EU_OPERATED:
        return f"EU-operated ({_operator_words(legal)}, {legal.country}); {where}"
    operated = f"operated from {legal.country}" if legal.country else "operator unknown"
    return f"outside the EU and the US ({operated}); {where}"


def _path_confidence(verdict: str, destination: HopVerdict, us_hops: Sequence[HopVerdict]) -> str:
    if verdict == UNKNOWN:
        return "none"
    if verdict == ROUTED_VIA_US:
        return max((h.physical.confidence for h in us_hops), key=confidence_rank)
    levels = [destination.physical.confidence]
    if verdict in (US_OPERATED_IN_EU, EU_HOSTED_EU_OPERATED, ELSEWHERE) and destination.legal:
        levels.append(destination.legal.confidence)
    return min(levels, key=confidence_rank)
