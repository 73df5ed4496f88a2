"""What the pages and the council report read: the one data-access module of the UI.

Every page and the report call these functions; none queries a table itself, and none
derives a verdict: the application's current state is what the analysis stored
(:func:`current_applications`; its semantics: docs/verdicts.md). The other functions read
the evidence behind it (paths, DNS answers, hops, findings, alerts, vantage points, raw
results) as stored. Each takes a :class:`~schemas.store.Store` (the engine, or a running
``grenswacht run`` through ``grenswacht.store.RemoteStore``) and blocks: call it from a
worker thread in async code.

``NOT_MEASURED``, ``ApplicationState`` and ``shares_by_municipality`` are
``consumers.current``'s, re-exported for the pages.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from consumers import current
from consumers.alerts.store import AlertStore
from consumers.current import NOT_MEASURED, ApplicationState, shares_by_municipality
from consumers.enrich.cname import Resolution, resolutions
from consumers.graph.findings import read_findings
from consumers.verdicts import VERDICT_CLASSES
from schemas.findings import Finding
from schemas.store import Store

__all__ = [
    "CLASSES", "NOT_MEASURED", "Answer", "ApplicationState", "Hops", "Method", "alerts",
    "coverage", "current_applications", "destinations", "dns_answers", "finding_counts",
    "findings", "freshness", "home", "hop_countries", "hops", "method", "paths",
    "raw_results", "shares_by_municipality", "us_bounds", "vantage_points",
]
CLASSES = tuple(c for c in VERDICT_CLASSES if c != "anycast")
"""The research's six classes, most serious first (anycast is an attribute, not a class)."""
_HOSTNAMES_SQL = "SELECT application, hostnames FROM applications FINAL"


def _utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def current_applications(store: Store, municipality: str | None = None
                         ) -> list[ApplicationState]:
    """Every application of the inventory with its current state, most serious first
    (``consumers.current``: what ``grenswacht apps`` and the dashboard show); an
    application not measured yet carries its inventory hostnames."""
    states = current.current_applications(store, municipality)
    if all(s.hostnames for s in states):
        return states
    names = {str(a): tuple(str(h) for h in hosts)
             for a, hosts in store.query(_HOSTNAMES_SQL).rows}
    return [s if s.hostnames else replace(s, hostnames=names.get(s.application, ()))
            for s in states]


# -- the evidence behind a verdict ------------------------------------------------------

_names = current.hostnames_of


_PATHS_SQL = """
SELECT timestamp, source, measurement_id, probe_id, vantage_key, home_set, destination_name,
       destination_address, verdict, confidence, anycast, destination_country,
       destination_operator, legal_country, us_hops, why, reasons
FROM path_verdicts FINAL
WHERE has(applications, {application:String})
ORDER BY home_set = '', timestamp DESC LIMIT {limit:UInt32}
"""


def paths(store: Store, state: ApplicationState, limit: int = 500) -> list[dict[str, Any]]:
    """The stored path verdicts of the application (the analysis tied each path to it by
    that vantage point's DNS answers or the traceroute's target): those from home vantage
    points first, newest first."""
    return store.query(_PATHS_SQL, {"application": state.application, "limit": limit}
                       ).as_dicts()


def home(path_rows: Iterable[dict[str, Any]], state: ApplicationState) -> list[dict[str, Any]]:
    """The home paths of the application's current period (what its verdict rests on)."""
    start, end = state.period_start, state.period_end

    def within(stamp: Any) -> bool:
        when = _utc(stamp)
        return start is None or end is None or when is None or start <= when <= end

    return [p for p in path_rows if p["home_set"] and within(p["timestamp"])]


def destinations(path_rows: Iterable[dict[str, Any]]) -> list[str]:
    return sorted({str(p["destination_address"]) for p in path_rows})


_DNS_SQL = """
SELECT source, measurement_id, probe_id, vantage_point, timestamp, response_index, section,
       query_name, record_type, record_name, record_data
FROM dns_answers FINAL
WHERE section = 'answer' AND record_type IN ('A', 'AAAA', 'CNAME')
  AND lower(trimRight(query_name, '.')) IN {names:Array(String)}
ORDER BY timestamp DESC LIMIT 20000
"""


@dataclass(frozen=True, slots=True)
class Answer:
    """The latest DNS answer one vantage point got for one hostname."""

    vantage: str
    hostname: str
    timestamp: dt.datetime
    chain: tuple[str, ...]
    """The hostname, then every CNAME target in order (``consumers.enrich.cname``)."""
    addresses: tuple[str, ...]


def dns_answers(store: Store, state: ApplicationState) -> list[Answer]:
    """Per vantage point and hostname the latest answer: the CNAME chain and addresses."""
    names = _names(state)
    rows = store.query(_DNS_SQL, {"names": names}).as_dicts() if names else []
    latest: dict[tuple[str, str], Resolution] = {}
    for found in resolutions(rows, names):  # oldest first: the newest stays
        latest[(found.vantage_key, found.hostname)] = found
    return [Answer(r.vantage_key, r.hostname, dt.datetime.fromtimestamp(r.timestamp, dt.UTC),
                   r.chain, tuple(sorted(r.addresses)))
            for r in sorted(latest.values(), key=lambda r: (r.hostname, r.vantage_key))]


_HOPS_SQL = """
SELECT reply_address, min(h) AS hop, count() AS replies,
       argMax(pc, b IS NOT NULL) AS physical_country,
       argMax(pconf, b IS NOT NULL) AS physical_confidence,
       min(b) AS bound_km, argMin(vk, coalesce(b, 1e9)) AS bound_vantage,
       argMin(r, coalesce(b, 1e9)) AS rtt_ms, argMin(ud, coalesce(b, 1e9)) AS us_distance_km,
       countIf(up = false) > 0 AS proven_not_us, max(ca) AS cloud_act,
       any(lo) AS legal_operator, any(lp) AS legal_parent, any(lc) AS legal_country,
       any(lconf) AS legal_confidence, any(an) AS as_name,
       groupUniqArrayArray(co) AS corrections, argMin(ev, coalesce(b, 1e9)) AS evidence
FROM (SELECT reply_address, hop AS h, physical_country AS pc, physical_confidence AS pconf,
             bound_km AS b, vantage_key AS vk, rtt_ms AS r, us_distance_km AS ud,
             us_possible AS up, cloud_act AS ca, legal_operator AS lo, legal_parent AS lp,
             legal_country AS lc, legal_confidence AS lconf, as_name AS an, corrections AS co,
             evidence AS ev
      FROM hop_verdicts FINAL
      WHERE destination_address IN {addresses:Array(String)} AND reply_address != '')
GROUP BY reply_address ORDER BY hop, reply_address LIMIT {limit:UInt32}
"""


def _public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Hops:
    rows: list[dict[str, Any]]
    private: int
    """Replies from private/reserved addresses (access networks), not listed."""
    more: int
    """Public addresses beyond the limit, not listed."""


def hops(store: Store, addresses: Sequence[str], limit: int = 150) -> Hops:
    """One row per public replying address on the paths towards ``addresses`` (those on US
    ground or under US law first, then by hop): both axes, the tightest physics bound (and
    from where) and the geo sources that made the claim."""
    found = store.query(_HOPS_SQL, {"addresses": list(addresses), "limit": 5000}).as_dicts()
    public = [r for r in found if _public(str(r["reply_address"]))]
    public.sort(key=lambda r: (not (r["physical_country"] == "US" or r["cloud_act"]),
                               int(r["hop"]), str(r["reply_address"])))
    rows = public[:limit]
    for row in rows:
        try:
            evidence = json.loads(row.pop("evidence") or "{}")
        except ValueError:
            evidence = {}
        sources = (evidence.get("physical") or {}).get("sources") or []
        row["sources"] = [f"{s.get('source', '?')}: {s.get('country') or '-'}"
                          for s in sources if isinstance(s, dict)]
    return Hops(rows, len(found) - len(public), len(public) - len(rows))


_KIND_COUNTS_SQL = "SELECT kind, count() FROM findings FINAL GROUP BY kind"


def finding_counts(store: Store) -> dict[str, int]:
    """How many findings of each kind are stored."""
    return {str(k): int(n) for k, n in store.query(_KIND_COUNTS_SQL).rows}


def findings(store: Store, kinds: Sequence[str] = (), *, application: str = "",
             addresses: Sequence[str] = (), limit: int = 500) -> list[Finding]:
    """Stored findings, newest window first; those of one application (named, or towards
    one of its addresses) when given."""
    found = read_findings(store, kinds, limit=limit if not application else 5000)
    if application:
        wanted = set(addresses)
        found = [f for f in found if application in f.applications
                 or f.destination_address in wanted][:limit]
    return found


def alerts(store: Store, *, application: str = "", state: str = "",
           limit: int = 200) -> list[dict[str, Any]]:
    """Alerts newest first, with who acknowledged them."""
    return AlertStore(store).list_alerts(state=state, application=application, limit=limit)


_VANTAGE_SQL = """
SELECT v.vantage_key AS vantage_key, v.latitude AS latitude, v.longitude AS longitude,
       v.uncertainty_km AS uncertainty_km, v.country AS country, v.basis AS basis,
       v.confidence AS confidence, s.last_seen AS last_seen, s.paths AS paths
FROM (SELECT * FROM vantage_points FINAL) AS v
LEFT JOIN (SELECT vantage_key, max(timestamp) AS last_seen, count() AS paths
           FROM path_verdicts FINAL GROUP BY vantage_key) AS s ON s.vantage_key = v.vantage_key
ORDER BY v.country != 'NL', v.country, v.vantage_key
"""


def vantage_points(store: Store) -> list[dict[str, Any]]:
    """Every located vantage point with the time of its latest analysed path."""
    rows = store.query(_VANTAGE_SQL).as_dicts()
    for row in rows:
        row["last_seen"] = _utc(row["last_seen"]) if row["paths"] else None
    return rows


_FRESHNESS_SQL = "SELECT max(timestamp), count() FROM path_verdicts FINAL"


def freshness(store: Store) -> dt.datetime | None:
    """When the newest analysed measurement was taken."""
    stamp, count = store.query(_FRESHNESS_SQL).rows[0]
    return _utc(stamp) if count else None


coverage = current.coverage
"""Why each unmeasured application has no verdict (:func:`consumers.current.coverage`)."""


_RAW_SQL = """
SELECT source, result_type, measurement_id, probe_id, timestamp, destination, vantage_point,
       payload
FROM raw_results FINAL
WHERE (source, measurement_id, probe_id, timestamp) IN
      (SELECT source, measurement_id, probe_id, timestamp FROM path_verdicts FINAL
       WHERE has(applications, {application:String}))
ORDER BY timestamp DESC LIMIT {limit:UInt32}
"""


def raw_results(store: Store, application: str, limit: int = 200) -> list[dict[str, Any]]:
    """The stored RIPE Atlas results (payload verbatim) behind the application's paths."""
    return store.query(_RAW_SQL, {"application": application, "limit": limit}).as_dicts()


_METHOD_SQL = """
SELECT min(timestamp) AS first, max(timestamp) AS last, count() AS paths,
       uniqExact(vantage_key) AS vantage_points
FROM path_verdicts FINAL
"""
_VERSIONS_SQL = """
SELECT name, groupUniqArray(version) AS versions
FROM (SELECT arrayJoin(mapKeys(dataset_versions)) AS name, dataset_versions[name] AS version
      FROM path_verdicts FINAL)
GROUP BY name ORDER BY name
"""


@dataclass(frozen=True, slots=True)
class Method:
    """What the verdicts rest on: the measurement period and the dataset versions."""

    first: dt.datetime | None
    last: dt.datetime | None
    paths: int
    vantage_points: int
    datasets: dict[str, tuple[str, ...]]


def method(store: Store) -> Method:
    row = store.query(_METHOD_SQL).as_dicts()[0]
    versions = {str(r["name"]): tuple(sorted(str(v) for v in r["versions"]))
                for r in store.query(_VERSIONS_SQL).as_dicts()}
    paths_count = int(row["paths"])
    return Method(_utc(row["first"]) if paths_count else None,
                  _utc(row["last"]) if paths_count else None, paths_count,
                  int(row["vantage_points"]), versions)


_HOP_COUNTRIES_SQL = """
SELECT physical_country AS country, uniqExact(reply_address) AS hops
FROM hop_verdicts FINAL
WHERE match(physical_country, '^[A-Z]{2}$') AND reply_address != ''
  AND (empty({addresses:Array(String)}) OR destination_address IN {addresses:Array(String)})
GROUP BY country ORDER BY hops DESC
"""
_US_BOUNDS_SQL = """
SELECT h.reply_address AS reply_address, h.bound_km AS bound_km, h.vantage_key AS vantage_key,
       v.latitude AS latitude, v.longitude AS longitude
FROM (SELECT reply_address, min(b) AS bound_km, argMin(vk, b) AS vantage_key
      FROM (SELECT reply_address, bound_km AS b, vantage_key AS vk FROM hop_verdicts FINAL
            WHERE physical_country = 'US' AND bound_km IS NOT NULL
              AND destination_address IN {addresses:Array(String)})
      GROUP BY reply_address) AS h
INNER JOIN (SELECT * FROM vantage_points FINAL) AS v ON v.vantage_key = h.vantage_key
ORDER BY bound_km LIMIT {limit:UInt32}
"""


def hop_countries(store: Store, addresses: Sequence[str] = ()) -> dict[str, int]:
    """Distinct replying addresses per physical country (towards ``addresses``, or all)."""
    rows = store.query(_HOP_COUNTRIES_SQL, {"addresses": list(addresses)}).rows
    return {str(country): int(hops) for country, hops in rows}


def us_bounds(store: Store, addresses: Sequence[str], limit: int = 40) -> list[dict[str, Any]]:
    """For hops placed in the US on the paths to ``addresses``: the tightest RTT disc (the
    vantage point's position and the radius) that physics allows for each."""
    return store.query(_US_BOUNDS_SQL, {"addresses": list(addresses), "limit": limit}
                       ).as_dicts()
