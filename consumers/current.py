"""The current state, as readers show it: one row per application of the inventory
(``grenswacht apps``, the web UI, the council report and the Grafana panel read the same
view, ``application_current``; ``docs/verdicts.md``).

Reads only what the analysis stored (one derivation). The store is any
:class:`schemas.store.Store` (``grenswacht.store.open_store``: the store itself or the
running ``grenswacht run``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.applications import municipality_shares
from consumers.verdicts import DESCRIPTIONS, FORWARD_ONLY_NOTE, SEVERITY, normalise_class
from schemas.store import Store

NOT_MEASURED = "not_measured"


CURRENT_SQL = """
SELECT application, verdict, confidence, shares, class_counts, path_count, worst_branch,
       anycast, home_sets, vantage_points, period_start, period_end, why, reasons, outliers,
       hostnames, addresses, cname_chains, providers
FROM application_current
"""
INVENTORY_SQL = "SELECT application, municipalities, criticality FROM applications FINAL"


@dataclass(frozen=True, slots=True)
class ApplicationState:
    """The current verdict of one application (``verdict`` is ``not_measured`` when no
    home path was ever analysed for it)."""

    application: str
    verdict: str
    confidence: str = "none"
    shares: dict[str, float] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    paths: int = 0
    worst_branch: str = ""
    anycast: bool = False
    home_sets: tuple[str, ...] = ()
    vantage_points: tuple[str, ...] = ()
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None
    why: str = ""
    reasons: tuple[str, ...] = ()
    outliers: tuple[str, ...] = ()
    municipalities: tuple[str, ...] = ()
    criticality: str = ""
    hostnames: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    cname_chains: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        return self.verdict != NOT_MEASURED

    def as_dict(self) -> dict[str, Any]:
        def when(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "application": self.application, "verdict": self.verdict,
            "description": DESCRIPTIONS.get(self.verdict, "not measured from home yet"),
            "confidence": self.confidence, "shares": dict(self.shares),
            "class_counts": dict(self.class_counts), "paths": self.paths,
            "vantage_points": list(self.vantage_points), "home_sets": list(self.home_sets),
            "worst_branch": self.worst_branch, "anycast": self.anycast,
            "period_start": when(self.period_start), "period_end": when(self.period_end),
            "why": self.why, "reasons": list(self.reasons), "outliers": list(self.outliers),
            "municipalities": list(self.municipalities), "criticality": self.criticality,
            "hostnames": list(self.hostnames), "addresses": list(self.addresses),
            "cname_chains": list(self.cname_chains), "providers": list(self.providers),
            "note": FORWARD_ONLY_NOTE,
        }


def _utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _state(row: dict[str, Any]) -> ApplicationState:
    municipalities = tuple(row.get("municipalities") or ())
    if "verdict" not in row:
        return ApplicationState(str(row["application"]), NOT_MEASURED,
                                municipalities=municipalities,
                                criticality=str(row.get("criticality") or ""))
    return ApplicationState(
        application=str(row["application"]), verdict=normalise_class(str(row["verdict"])),
        confidence=str(row["confidence"]), shares=dict(row["shares"] or {}),
        class_counts={k: int(v) for k, v in (row["class_counts"] or {}).items()},
        paths=int(row["path_count"]), worst_branch=str(row["worst_branch"]),
        anycast=bool(row["anycast"]), home_sets=tuple(row["home_sets"]),
        vantage_points=tuple(row["vantage_points"]), period_start=_utc(row["period_start"]),
        period_end=_utc(row["period_end"]), why=str(row["why"]),
        reasons=tuple(row["reasons"]), outliers=tuple(row["outliers"]),
        municipalities=municipalities, criticality=str(row.get("criticality") or ""),
        hostnames=tuple(row["hostnames"]), addresses=tuple(row["addresses"]),
        cname_chains=tuple(row["cname_chains"]), providers=tuple(row["providers"]),
    )


def current_applications(store: Store, municipality: str | None = None
                         ) -> list[ApplicationState]:
    """Every application of the inventory (and every measured one) with its current
    state; only those of ``municipality`` when given. Most serious first."""
    rows: dict[str, dict[str, Any]] = {}
    for sql in (INVENTORY_SQL, CURRENT_SQL):
        result = store.query(sql)
        names = list(result.column_names)
        for row in result.rows:
            record = dict(zip(names, row, strict=True))
            rows.setdefault(str(record["application"]), {}).update(record)
    states = [_state(row) for row in rows.values()]
    if municipality:
        wanted = municipality.casefold()
        states = [s for s in states if any(m.casefold() == wanted for m in s.municipalities)]
    return sorted(states, key=lambda s: (-SEVERITY.get(s.verdict, -1), s.application))


def shares_by_municipality(states: Sequence[ApplicationState]) -> dict[str, dict[str, float]]:
    """Per municipality the share of its measured applications in each class."""
    return municipality_shares((s.municipalities, s.verdict) for s in states if s.measured)
