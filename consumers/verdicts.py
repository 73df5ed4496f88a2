"""Path and application verdicts in the classes of the research that motivated grenswacht.

Paths are **forward paths only** (vantage point -> destination); the way back can differ
and is not measured. Pure functions over hop verdicts from ``consumers.enrich``.

Classes, most serious first (an application takes the most serious class of its paths):

* ``hosted_in_us`` — the destination is physically in the US;
* ``routed_via_us`` — the destination is not, but a hop on the way is (a load-balanced
  path counts when any branch is);
* ``us_operated_in_eu`` — in the EU/EEA, but the operator's parent is a US company
  (CLOUD Act);
* ``elsewhere`` — hosted outside the EU/EEA and the US, or in the EU by a non-EU,
  non-US operator;
* ``anycast`` — one address, many places (set by the path-graph detectors through the
  ``anycast`` hook; never overrides a US hop);
* ``eu_hosted_eu_operated`` — in the EU/EEA and operated by an EU/EEA company;
* ``unknown`` — the sources cannot place the destination.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.enrich.countries import BLOC_EU_EEA, EU_EEA
from consumers.enrich.hops import BASIS_PHYSICS, HopVerdict

__all__ = ["EU_EEA"]  # re-exported: the blocs live with the country shapes

HOSTED_IN_US = "hosted_in_us"
ROUTED_VIA_US = "routed_via_us"
US_OPERATED_IN_EU = "us_operated_in_eu"
ELSEWHERE = "elsewhere"
ANYCAST = "anycast"
EU_HOSTED_EU_OPERATED = "eu_hosted_eu_operated"
UNKNOWN = "unknown"

VERDICT_CLASSES = (
    HOSTED_IN_US, ROUTED_VIA_US, US_OPERATED_IN_EU, ELSEWHERE, ANYCAST,
    EU_HOSTED_EU_OPERATED, UNKNOWN,
)
SEVERITY = {name: len(VERDICT_CLASSES) - i for i, name in enumerate(VERDICT_CLASSES)}
SEVERITY[UNKNOWN] = 0

DESCRIPTIONS = {
    HOSTED_IN_US: "hosted in the United States",
    ROUTED_VIA_US: "routed via the United States",
    US_OPERATED_IN_EU: "US-operated in the EU (US law applies: CLOUD Act)",
    ELSEWHERE: "hosted or operated outside the EU and the US",
    ANYCAST: "anycast: one address served from several places",
    EU_HOSTED_EU_OPERATED: "EU-hosted and EU-operated",
    UNKNOWN: "unknown: the sources cannot place it",
}

FORWARD_ONLY_NOTE = (
    "Forward paths only: from the vantage point to the application. The return path is "
    "not measured and can differ."
)



@dataclass(frozen=True, slots=True)
class PathVerdict:
    verdict: str
    destination: HopVerdict
    us_hops: tuple[HopVerdict, ...]
    corrections: int
    reasons: tuple[str, ...]
    confidence: str
    refutations: tuple[dict[str, Any], ...] = ()  # end-to-end constraints that refuted a hop

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "description": DESCRIPTIONS[self.verdict],
            "confidence": self.confidence,
            "reasons": list(self.reasons),
            "destination": self.destination.as_dict(),
            "us_hops": [hop.as_dict() for hop in self.us_hops],
            "corrections": self.corrections,
            "end_to_end": list(self.refutations),
            "note": FORWARD_ONLY_NOTE,
        }


def classify_path(
    hops: Sequence[HopVerdict], destination: HopVerdict, *, anycast: bool = False
) -> PathVerdict:
    """The class of one forward path. ``hops`` are the replies on the way (not the
    destination); ``anycast`` is the hook for the path-graph anycast detector."""
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
    elif anycast:
        verdict = ANYCAST
        reasons.append("the path-graph detectors found the destination to be anycast")
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
    if physical.basis == BASIS_PHYSICS and not physical.is_us:
        reasons.append(f"located by physics alone: {physical.note}")
    if corrections:
        reasons.append(f"{corrections} geo-database claim(s) were contradicted by RTT physics "
                       "and corrected")
    reasons.extend(f"hop {r['claimed_hop']} ({r['claimed_address']}) is not in the US: hop "
                   f"{r['later_hop']} answered within {r['later_rtt_ms']} ms, a detour through "
                   f"the US needs at least {r['required_ms']} ms" for r in refutations)
    confidence = _path_confidence(verdict, destination, us_hops)
    return PathVerdict(verdict, destination, us_hops, corrections, tuple(reasons), confidence,
                       refutations)


def _source_names(hop: HopVerdict) -> str:
    if hop.physical.basis == BASIS_PHYSICS:
        return "physics (the intersection of its RTT discs)"
    names = sorted({c.source for c in hop.physical.sources if c.country == hop.physical.country})
    return ", ".join(names) or "no source"


_RANK = {"high": 3, "medium": 2, "low": 1, "none": 0}


def _path_confidence(verdict: str, destination: HopVerdict, us_hops: Sequence[HopVerdict]) -> str:
    if verdict == UNKNOWN:
        return "none"
    if verdict == ROUTED_VIA_US:
        return max((h.physical.confidence for h in us_hops), key=_RANK.__getitem__)
    levels = [destination.physical.confidence]
    if verdict in (US_OPERATED_IN_EU, EU_HOSTED_EU_OPERATED, ELSEWHERE) and destination.legal:
        levels.append(destination.legal.confidence)
    return min(levels, key=_RANK.__getitem__)


@dataclass(frozen=True, slots=True)
class ApplicationVerdict:
    application: str
    verdict: str
    class_counts: dict[str, int]
    hostnames: tuple[str, ...]
    addresses: tuple[str, ...]
    reasons: tuple[str, ...]
    paths: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "application": self.application,
            "verdict": self.verdict,
            "description": DESCRIPTIONS[self.verdict],
            "paths": self.paths,
            "class_counts": dict(self.class_counts),
            "hostnames": list(self.hostnames),
            "addresses": list(self.addresses),
            "reasons": list(self.reasons),
            "note": FORWARD_ONLY_NOTE,
        }


def classify_application(
    application: str,
    hostnames: Iterable[str],
    addresses: Iterable[str],
    paths: Iterable[PathVerdict],
) -> ApplicationVerdict:
    """The most serious class over every measured path to any of the app's addresses."""
    path_list = list(paths)
    counts = Counter(path.verdict for path in path_list)
    known = [name for name in counts if name != UNKNOWN]
    if known:
        verdict = max(known, key=SEVERITY.__getitem__)
    else:
        verdict = UNKNOWN
    reasons = [f"{counts[name]} of {len(path_list)} measured forward paths: {DESCRIPTIONS[name]}"
               for name in VERDICT_CLASSES if counts.get(name)]
    if not path_list:
        reasons.append("no traceroute reached any address of this application in the window")
    examples: dict[str, list[str]] = {}
    for path in path_list:
        if path.verdict == verdict and len(examples.setdefault(verdict, [])) < 3:
            examples[verdict].append("; ".join(path.reasons))
    reasons.extend(examples.get(verdict, []))
    return ApplicationVerdict(
        application, verdict, dict(counts), tuple(sorted(set(hostnames))),
        tuple(sorted(set(addresses))), tuple(reasons), len(path_list), examples,
    )
