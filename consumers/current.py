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
INVENTORY_SQL = ("SELECT application, municipalities, criticality, hostnames "
                 "FROM applications FINAL")


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
                                criticality=str(row.get("criticality") or ""),
                                hostnames=tuple(row.get("hostnames") or ()))
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


def hostnames_of(state: ApplicationState) -> list[str]:
    """The application's hostnames as the results name them (lower case, no final dot)."""
    return sorted({h.lower().rstrip(".") for h in state.hostnames})


_RESULTS_SQL = """
SELECT hostname, countIf(kind = 'dns') AS dns, countIf(kind = 'traceroute') AS traceroutes
FROM (SELECT lower(trimRight(query_name, '.')) AS hostname, 'dns' AS kind FROM dns_answers
      WHERE lower(trimRight(query_name, '.')) IN {names:Array(String)}
      UNION ALL
      SELECT resolver_address, 'dns' FROM dns_answers
      WHERE resolver_address IN {names:Array(String)}
      UNION ALL
      SELECT lower(trimRight(destination_name, '.')), 'traceroute' FROM traceroute_hops
      WHERE hop = 1 AND lower(trimRight(destination_name, '.')) IN {names:Array(String)}
      UNION ALL
      SELECT destination_address, 'traceroute' FROM traceroute_hops
      WHERE hop = 1 AND destination_address IN {names:Array(String)})
GROUP BY hostname
"""
_PATHED_SQL = """
SELECT DISTINCT arrayJoin(applications) AS application FROM path_verdicts FINAL
WHERE hasAny(applications, {applications:Array(String)})
"""


def coverage(store: Store, states: Sequence[ApplicationState]) -> dict[str, str]:
    """Why each unmeasured application has no verdict: ``not_home`` (paths analysed, but
    none from its home vantage points), ``not_analysed`` (traceroutes stored, no path
    verdict yet), ``dns_only`` (DNS answers but no traceroute) or ``no_results`` (nothing
    stored for its hostnames)."""
    missing = [s for s in states if not s.measured]
    if not missing:
        return {}
    names = sorted({n for s in missing for n in hostnames_of(s)})
    seen = {str(r["hostname"]): r for r in store.query(
        _RESULTS_SQL, {"names": names}).as_dicts()} if names else {}
    pathed = {str(r[0]) for r in store.query(
        _PATHED_SQL, {"applications": [s.application for s in missing]}).rows}
    why: dict[str, str] = {}
    for state in missing:
        rows = [seen[n] for n in hostnames_of(state) if n in seen]
        if state.application in pathed:
            why[state.application] = "not_home"
        elif any(int(r["traceroutes"]) for r in rows):
            why[state.application] = "not_analysed"
        elif any(int(r["dns"]) for r in rows):
            why[state.application] = "dns_only"
        else:
            why[state.application] = "no_results"
    return why


def shares_by_municipality(states: Sequence[ApplicationState]) -> dict[str, dict[str, float]]:
    """Per municipality the share of its measured applications in each class."""
    return municipality_shares((s.municipalities, s.verdict) for s in states if s.measured)
