"""The application verdict: an application's home paths over its period -> one class, the
shares, the worst branch and why (pure; ``docs/verdicts.md`` has the rules and examples).

* The paths are the application's **home** paths (``consumers.home``) whose timestamps lie
  in the period ``(period_end - period_s, period_end]``, ``period_end`` being the
  application's latest home measurement.
* ``shares``: the share of those paths in each class.
* ``worst_branch``: the most serious class seen on any home path or load-balanced branch
  (a branch through the US counts, even when the paths measured used other branches).
* ``verdict``: the most serious *established* class. A class is an **outlier** — shown,
  counted in the shares, but not the verdict — when at most ``outlier_max_paths`` home
  paths show it, all of low confidence, while another placed class is established. A
  load-balanced branch through the US (a ``load_balancer`` finding with ``us_branches``,
  seen from a home vantage point) establishes ``routed_via_us`` when the finding has
  medium or high confidence. ``unknown`` only when no path could be placed.
* ``confidence``: the best confidence among the paths (or the finding) of the verdict class.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.verdicts import (
    DESCRIPTIONS,
    FORWARD_ONLY_NOTE,
    HOSTED_IN_US,
    ROUTED_VIA_US,
    SEVERITY,
    UNKNOWN,
    VERDICT_CLASSES,
    confidence_rank,
    normalise_class,
)


@dataclass(frozen=True, slots=True)
class HomePath:
    """One stored home path verdict of an application (a ``path_verdicts`` row)."""

    verdict: str
    confidence: str
    vantage_key: str
    home_set: str
    destination_address: str
    timestamp: int
    anycast: bool = False
    why: str = ""
    kind: str = "traceroute"
    rtt_ms: float | None = None  # the destination's (the physics behind the why)


@dataclass(frozen=True, slots=True)
class Branch:
    """A load-balanced branch through the US, seen from a home vantage point."""

    destination_address: str
    vantage_keys: tuple[str, ...]
    confidence: str
    summary: str
    finding_id: str = ""
    window_start: float = float("-inf")  # the finding's window (epoch seconds)
    window_end: float = float("inf")


@dataclass(frozen=True, slots=True)
class ApplicationVerdict:
    application: str
    verdict: str
    confidence: str
    shares: dict[str, float]
    class_counts: dict[str, int]
    paths: int
    vantage_points: tuple[str, ...]
    home_sets: tuple[str, ...]
    period_start: dt.datetime
    period_end: dt.datetime
    worst_branch: str
    anycast: bool
    why: str
    reasons: tuple[str, ...]
    outliers: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    cname_chains: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "application": self.application, "verdict": self.verdict,
            "description": DESCRIPTIONS[self.verdict], "confidence": self.confidence,
            "shares": dict(self.shares), "class_counts": dict(self.class_counts),
            "paths": self.paths, "vantage_points": list(self.vantage_points),
            "home_sets": list(self.home_sets),
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(), "worst_branch": self.worst_branch,
            "anycast": self.anycast, "why": self.why, "reasons": list(self.reasons),
            "outliers": list(self.outliers), "hostnames": list(self.hostnames),
            "addresses": list(self.addresses), "cname_chains": list(self.cname_chains),
            "providers": list(self.providers), "note": FORWARD_ONLY_NOTE,
        }


def _time(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _outliers(by_class: dict[str, list[HomePath]], max_paths: int) -> set[str]:
    if max_paths <= 0:
        return set()
    weak = {name for name, paths in by_class.items() if name != UNKNOWN
            and len(paths) <= max_paths
            and all(confidence_rank(p.confidence) <= confidence_rank("low") for p in paths)}
    placed = {name for name in by_class if name != UNKNOWN}
    return weak if placed - weak else set()


def _best(paths: Sequence[HomePath]) -> HomePath:
    """The path that explains a class best: highest confidence, then the smallest RTT
    (the tightest physics), then the latest."""
    return max(paths, key=lambda p: (confidence_rank(p.confidence),
                                     -(p.rtt_ms if p.rtt_ms is not None else 1e9),
                                     p.timestamp))


def classify_application(
    application: str,
    paths: Sequence[HomePath],
    *,
    period_s: float,
    branches: Sequence[Branch] = (),
    outlier_max_paths: int = 1,
    hostnames: Iterable[str] = (),
    cname_chains: Iterable[str] = (),
    providers: Iterable[str] = (),
) -> ApplicationVerdict:
    """The verdict of one application over its home paths (see the module docstring);
    ``paths`` must not be empty (no home paths: no verdict, nothing changes)."""
    if not paths:
        raise ValueError(f"{application}: an application verdict needs home paths")
    end = max(p.timestamp for p in paths)
    start = end - int(period_s)
    paths = [p for p in paths if start < p.timestamp <= end]
    by_class: dict[str, list[HomePath]] = {}
    for path in paths:
        by_class.setdefault(normalise_class(path.verdict), []).append(path)
    counts = Counter({name: len(found) for name, found in by_class.items()})
    total = len(paths)
    shares = {name: round(counts[name] / total, 4) for name in VERDICT_CLASSES if counts[name]}
    outliers = _outliers(by_class, outlier_max_paths)
    established = [name for name in by_class if name != UNKNOWN and name not in outliers]
    us_branches = [b for b in branches if confidence_rank(b.confidence) >= 2]
    seen = set(by_class) | ({ROUTED_VIA_US} if branches else set())
    worst = max(seen, key=SEVERITY.__getitem__)
    if us_branches and HOSTED_IN_US not in established:
        established.append(ROUTED_VIA_US)
    reasons = [f"{counts[name]} of {total} home paths ({shares[name]:.0%}): {DESCRIPTIONS[name]}"
               + (" — outlier, not the verdict" if name in outliers else "")
               for name in VERDICT_CLASSES if counts[name]]
    reasons.extend(f"load-balanced branch through the US ({b.confidence} confidence): "
                   f"{b.summary}" for b in branches)
    if established:
        verdict = max(established, key=SEVERITY.__getitem__)
    elif [name for name in by_class if name != UNKNOWN]:
        verdict = max((n for n in by_class if n != UNKNOWN), key=SEVERITY.__getitem__)
    else:
        verdict = UNKNOWN
    if verdict in by_class:
        best = _best(by_class[verdict])
        confidence, why = best.confidence, best.why
    elif us_branches:
        branch = max(us_branches, key=lambda b: confidence_rank(b.confidence))
        confidence = branch.confidence
        why = f"routed via the US on a load-balanced branch: {branch.summary}"
    else:
        confidence, why = "none", ""
    if verdict == UNKNOWN:
        confidence = "none"
        why = why or "no home path could be placed"
    vantages = sorted({p.vantage_key for p in paths})
    if why and total > 1:
        why += f" ({counts.get(verdict, 0)} of {total} home paths, {len(vantages)} vantage points)"
    return ApplicationVerdict(
        application=application, verdict=verdict, confidence=confidence, shares=shares,
        class_counts=dict(counts), paths=total, vantage_points=tuple(vantages),
        home_sets=tuple(sorted({p.home_set for p in paths})), period_start=_time(start),
        period_end=_time(end), worst_branch=worst, anycast=any(p.anycast for p in paths),
        why=why, reasons=tuple(reasons), outliers=tuple(sorted(outliers)),
        hostnames=tuple(sorted(set(hostnames))),
        addresses=tuple(sorted({p.destination_address for p in paths})),
        cname_chains=tuple(sorted(set(cname_chains))), providers=tuple(sorted(set(providers))),
    )


def municipality_shares(rows: Iterable[tuple[Sequence[str], str]]) -> dict[str, dict[str, float]]:
    """(municipalities, verdict) per application -> per municipality the share of its
    measured applications in each class (the research's figures)."""
    per: dict[str, Counter[str]] = {}
    for municipalities, verdict in rows:
        for municipality in municipalities or ("",):
            per.setdefault(municipality, Counter())[normalise_class(verdict)] += 1
    return {m: {name: round(c[name] / sum(c.values()), 4) for name in VERDICT_CLASSES if c[name]}
            for m, c in sorted(per.items())}
