"""Enrich a time window from storage: traceroute_hops (+ ping_results, dns_answers) in,
verdicts out.

The pure part is in ``paths.py`` (re-exported here): :func:`paths_from_rows` (rows ->
forward paths) and :func:`verdicts_for_paths` (paths + the window's pings -> hop and path
verdicts); :func:`enrich_window` reads a window from ClickHouse, writes
``vantage_points``, ``hop_verdicts``, ``path_verdicts`` and (given an app -> hostnames
mapping) ``application_verdicts``. Running it again after a dataset changed replaces the
verdicts (ReplacingMergeTree on ``computed_at``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from consumers.enrich.hops import Enricher
from consumers.enrich.paths import (
    PathResult,
    TracedPath,
    end_to_end_refutations,
    hop_verdicts_for_path,
    path_observations,
    paths_from_rows,
    ping_observations,
    verdicts_for_path,
    verdicts_for_paths,
)
from consumers.enrich.vantage import VantageRegistry
from consumers.verdicts import ApplicationVerdict, classify_application

__all__ = [  # the pure path functions live in paths.py; callers may import them from here
    "PING_LOOKBACK", "PathResult", "TracedPath", "WindowSummary", "application_verdicts",
    "end_to_end_refutations", "enrich_window", "hop_verdicts_for_path", "path_observations",
    "paths_from_rows", "ping_observations", "verdicts_for_path", "verdicts_for_paths",
]


def _datetime(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


class _Storage(Protocol):
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any: ...

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]], *,
               dedup_token: str | None = None) -> int: ...


def _hop_columns(results: Sequence[PathResult], computed: dt.datetime) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in (
        "source", "measurement_id", "probe_id", "timestamp", "destination_address", "hop",
        "reply_address", "vantage_key", "rtt_ms", "physical_country", "physical_confidence",
        "physical_bloc", "physical_basis", "candidate_countries", "us_possible", "bound_km",
        "us_distance_km", "has_correction", "corrections",
        "legal_operator", "legal_parent", "legal_country", "legal_confidence", "cloud_act",
        "asn", "as_name", "evidence", "dataset_versions", "computed_at")}
    for result in results:
        path = result.path
        for hop in result.hops:
            physical, legal, bound = hop.physical, hop.legal, hop.physical.bound
            values = (
                path.source, path.measurement_id, path.probe_id, _datetime(path.timestamp),
                path.destination_address, min(hop.record.hop, 255), hop.record.address,
                result.vantage.key if result.vantage else "", hop.record.rtt_ms,
                physical.country, physical.confidence, physical.bloc, physical.basis,
                list(physical.candidates), physical.us_possible,
                bound.bound_km if bound else None, bound.us_distance_km if bound else None,
                bool(physical.corrections), list(physical.corrections), legal.operator,
                legal.parent, legal.country, legal.confidence, legal.cloud_act, legal.asn,
                legal.as_name,
                json.dumps({"physical": physical.as_dict(), "legal": legal.as_dict()}),
                hop.dataset_versions, computed,
            )
            for name, value in zip(columns, values, strict=True):
                columns[name].append(value)
    return columns


def _path_columns(results: Sequence[PathResult], computed: dt.datetime) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in (
        "source", "measurement_id", "probe_id", "timestamp", "destination_address",
        "destination_name", "vantage_key", "verdict", "confidence", "destination_country",
        "destination_bloc", "destination_basis", "destination_operator", "legal_country",
        "us_hops", "correction_count", "end_to_end_refutations", "reasons",
        "evidence", "dataset_versions", "computed_at")}
    for result in results:
        path, verdict = result.path, result.verdict
        values = (
            path.source, path.measurement_id, path.probe_id, _datetime(path.timestamp),
            path.destination_address, path.destination_name,
            result.vantage.key if result.vantage else "", verdict.verdict, verdict.confidence,
            verdict.destination.physical.country, verdict.destination.physical.bloc,
            verdict.destination.physical.basis, verdict.destination.legal.operator,
            verdict.destination.legal.country,
            [f"{h.record.hop}:{h.record.address}" for h in verdict.us_hops],
            verdict.corrections, len(verdict.refutations), list(verdict.reasons),
            json.dumps(verdict.as_dict()),
            verdict.destination.dataset_versions, computed,
        )
        for name, value in zip(columns, values, strict=True):
            columns[name].append(value)
    return columns


@dataclass(slots=True)
class WindowSummary:
    paths: int = 0
    hop_verdicts: int = 0
    corrections: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    applications: list[ApplicationVerdict] = field(default_factory=list)


_HOPS_SQL = """
SELECT source, measurement_id, probe_id, toUnixTimestamp(timestamp) AS timestamp,
       any(vantage_point) AS vantage_point, destination_address,
       any(destination_name) AS destination_name,
       any(probe_public_address) AS probe_public_address, hop, reply_address,
       min(traceroute_hops.rtt_ms) AS rtt_ms, max(traceroute_hops.rtt_ms) AS rtt_max_ms,
       countIf(traceroute_hops.is_timeout) AS timeouts, false AS is_timeout
FROM traceroute_hops FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
GROUP BY source, measurement_id, probe_id, timestamp, destination_address, hop, reply_address
"""

_PINGS_SQL = """
SELECT measurement_id, probe_id, vantage_point, source_address, destination_address,
       min(rtt_min_ms) AS smallest_rtt_ms
FROM ping_results FINAL
WHERE timestamp >= {since:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
  AND rtt_min_ms IS NOT NULL
GROUP BY measurement_id, probe_id, vantage_point, source_address, destination_address
"""
PING_LOOKBACK = dt.timedelta(days=1)  # pings this long before a window bound its addresses

_DNS_SQL = """
SELECT DISTINCT lower(trimRight(query_name, '.')) AS hostname, record_data
FROM dns_answers FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
  AND record_type IN ('A', 'AAAA') AND section = 'answer'
  AND lower(trimRight(query_name, '.')) IN {hostnames:Array(String)}
"""


def enrich_window(
    storage: _Storage,
    start: dt.datetime,
    end: dt.datetime,
    enricher: Enricher,
    registry: VantageRegistry,
    applications: Mapping[str, Sequence[str]] | None = None,
    *,
    computed_at: dt.datetime | None = None,
    anycast_addresses: frozenset[str] = frozenset(),
    ping_lookback: dt.timedelta = PING_LOOKBACK,
) -> WindowSummary:
    """Compute and store verdicts for every traceroute in [start, end); destinations in
    ``anycast_addresses`` (found by the path graph) get the anycast class. Pings from
    ``ping_lookback`` before the window to its end (e.g. confirmation measurements) bound
    the addresses they reached."""
    computed = computed_at or dt.datetime.now(dt.UTC)
    parameters = {"start": start, "end": end}
    rows = storage.query(_HOPS_SQL, parameters).as_dicts()
    pings = storage.query(_PINGS_SQL, {"since": start - ping_lookback, "end": end}).as_dicts()
    results = verdicts_for_paths(paths_from_rows(rows), enricher, registry,
                                 anycast_addresses, ping_observations(pings, registry))
    summary = WindowSummary(paths=len(results))
    vantages = {r.vantage.key: r.vantage for r in results if r.vantage is not None}
    if vantages:
        storage.insert("vantage_points", {
            "vantage_key": [v.key for v in vantages.values()],
            "latitude": [v.latitude for v in vantages.values()],
            "longitude": [v.longitude for v in vantages.values()],
            "uncertainty_km": [v.uncertainty_km for v in vantages.values()],
            "area": [v.area for v in vantages.values()],
            "country": [v.country for v in vantages.values()],
            "basis": [v.basis for v in vantages.values()],
            "confidence": [v.confidence for v in vantages.values()],
            "computed_at": [computed] * len(vantages),
        })
    summary.hop_verdicts = storage.insert("hop_verdicts", _hop_columns(results, computed))
    storage.insert("path_verdicts", _path_columns(results, computed))
    for result in results:
        summary.classes[result.verdict.verdict] = summary.classes.get(result.verdict.verdict,
                                                                      0) + 1
        summary.corrections += sum(1 for h in result.hops if h.physical.corrections)
    if applications:
        summary.applications = application_verdicts(storage, start, end, applications, results)
        versions = enricher.dataset_versions()
        apps = summary.applications
        storage.insert("application_verdicts", {
            "application": [a.application for a in apps],
            "window_start": [start] * len(apps),
            "window_end": [end] * len(apps),
            "verdict": [a.verdict for a in apps],
            "path_count": [a.paths for a in apps],
            "class_counts": [a.class_counts for a in apps],
            "hostnames": [list(a.hostnames) for a in apps],
            "addresses": [list(a.addresses) for a in apps],
            "reasons": [list(a.reasons) for a in apps],
            "dataset_versions": [versions] * len(apps),
            "computed_at": [computed] * len(apps),
        })
    return summary


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _norm(hostname: str) -> str:
    return hostname.strip().lower().rstrip(".")


def application_verdicts(
    storage: _Storage,
    start: dt.datetime,
    end: dt.datetime,
    applications: Mapping[str, Sequence[str]],
    results: Sequence[PathResult],
) -> list[ApplicationVerdict]:
    """app -> hostnames -> addresses (DNS answers and traceroute targets) -> paths -> class."""
    every_name = sorted({_norm(h) for names in applications.values() for h in names})
    answers = storage.query(_DNS_SQL, {"start": start, "end": end, "hostnames": every_name})
    by_name: dict[str, set[str]] = {}
    for hostname, address in answers.rows:
        by_name.setdefault(str(hostname), set()).add(str(address))
    for result in results:
        name = _norm(result.path.destination_name)
        if name:
            by_name.setdefault(name, set()).add(result.path.destination_address)
    verdicts = []
    for application, hostnames in sorted(applications.items()):
        names = {_norm(h) for h in hostnames}
        addresses = {n for n in names if _is_address(n)}
        for name in names:
            addresses |= by_name.get(name, set())
        paths = [r.verdict for r in results if r.path.destination_address in addresses]
        verdicts.append(classify_application(application, names, addresses, paths))
    return verdicts
