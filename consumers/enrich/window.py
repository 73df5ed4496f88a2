"""Enrich a time window from storage: traceroute_hops (+ dns_answers) in, verdicts out.

:func:`paths_from_rows` is pure (``traceroute_hops``-shaped dicts, as ``schemas.normalize``
produces and ClickHouse returns, -> forward paths); :func:`verdicts_for_paths` turns them into
hop and path verdicts; :func:`enrich_window` reads a window from ClickHouse, writes
``vantage_points``, ``hop_verdicts``, ``path_verdicts`` and (given an app -> hostnames
mapping) ``application_verdicts``. Running it again after a dataset changed replaces the
verdicts (ReplacingMergeTree on ``computed_at``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from consumers.enrich.hops import Enricher, HopRecord, HopVerdict
from consumers.enrich.vantage import Vantage, VantageRegistry
from consumers.verdicts import ApplicationVerdict, PathVerdict, classify_application, classify_path
from schemas.normalize import epoch_seconds


class _Storage(Protocol):
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any: ...

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]], *,
               dedup_token: str | None = None) -> int: ...


@dataclass(slots=True)
class TracedPath:
    """One traceroute result: who measured, to where, and the minimum RTT per reply address."""

    source: str
    measurement_id: int
    probe_id: int
    timestamp: int  # seconds since the epoch
    vantage_point: str
    destination_address: str
    destination_name: str
    probe_public_address: str
    hops: dict[tuple[int, str], float | None] = field(default_factory=dict)

    def add(self, hop: int, address: str, rtt_ms: float | None) -> None:
        if not address:
            return
        key = (hop, address)
        known = self.hops.get(key)
        if key not in self.hops or (rtt_ms is not None and (known is None or rtt_ms < known)):
            self.hops[key] = rtt_ms


_epoch = epoch_seconds  # rows from SQL (seconds), ClickHouse (datetime) or normalize (ms)


def _datetime(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def paths_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[TracedPath]:
    """Group traceroute_hops rows into forward paths (min RTT per hop and address)."""
    paths: dict[tuple[Any, ...], TracedPath] = {}
    for row in rows:
        if not row["destination_address"]:
            continue  # name resolution failed: no path was measured
        key = (row["source"], row["measurement_id"], row["probe_id"], _epoch(row["timestamp"]),
               row["destination_address"])
        path = paths.get(key)
        if path is None:
            path = paths[key] = TracedPath(
                str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]),
                _epoch(row["timestamp"]), str(row.get("vantage_point") or ""),
                str(row["destination_address"]), str(row.get("destination_name") or ""),
                str(row.get("probe_public_address") or ""),
            )
        if not row.get("is_timeout"):
            path.add(int(row["hop"]), str(row.get("reply_address") or ""), row.get("rtt_ms"))
    return list(paths.values())


@dataclass(slots=True)
class PathResult:
    path: TracedPath
    vantage: Vantage | None
    hops: list[HopVerdict]
    verdict: PathVerdict


def hop_verdicts_for_path(path: TracedPath, enricher: Enricher,
                          registry: VantageRegistry) -> tuple[Vantage | None, list[HopVerdict]]:
    vantage = registry.resolve(path.probe_id, path.vantage_point, path.probe_public_address)
    return vantage, [
        enricher.hop_verdict(HopRecord(address, rtt, vantage, hop,
                                       address == path.destination_address))
        for (hop, address), rtt in sorted(path.hops.items())
    ]


def _apply_proof(hop: HopVerdict, proofs: Mapping[str, HopVerdict]) -> HopVerdict:
    proof = proofs.get(hop.record.address)
    if proof is None or not hop.physical.is_us:
        return hop
    vantage = proof.record.vantage.key if proof.record.vantage else "?"
    physical = replace(
        proof.physical, bound=hop.physical.bound,
        note=f"proved not in the US by its reply to vantage point {vantage} in "
        f"{proof.record.rtt_ms} ms (same address, not anycast); {proof.physical.note}".strip(),
    )
    return replace(hop, physical=physical)


def verdicts_for_path(path: TracedPath, enricher: Enricher, registry: VantageRegistry,
                      *, anycast: bool = False,
                      proofs: Mapping[str, HopVerdict] | None = None) -> PathResult:
    """Hop verdicts and the path verdict of one traceroute.

    ``proofs`` (address -> a reply of that address that physics proved not to be in the
    US, from any vantage point) overrides US claims for the same address elsewhere and
    stands in for a destination that did not reply. The caller leaves anycast addresses
    out of ``proofs``: one anycast address is in several places."""
    vantage, hops = hop_verdicts_for_path(path, enricher, registry)
    return _classify(path, vantage, hops, enricher, proofs or {}, anycast)


def _classify(path: TracedPath, vantage: Vantage | None, hops: list[HopVerdict],
              enricher: Enricher, proofs: Mapping[str, HopVerdict],
              anycast: bool) -> PathResult:
    hops = [_apply_proof(hop, proofs) for hop in hops]
    on_the_way = [h for h in hops if not h.record.is_destination]
    replied = [h for h in hops if h.record.is_destination]
    if replied:
        destination = min(replied, key=lambda h: h.record.rtt_ms if h.record.rtt_ms is not None
                          else float("inf"))
    elif path.destination_address in proofs:
        destination = proofs[path.destination_address]
    else:
        destination = _apply_proof(enricher.hop_verdict(
            HopRecord(path.destination_address, None, vantage, 0, True)), proofs)
    return PathResult(path, vantage, hops, classify_path(on_the_way, destination,
                                                         anycast=anycast))


def verdicts_for_paths(paths: Sequence[TracedPath], enricher: Enricher,
                       registry: VantageRegistry,
                       anycast_addresses: frozenset[str] = frozenset()) -> list[PathResult]:
    """Every path of a window. An address that physics proved not to be in the US on one
    path is not in the US on any other path of the window either (unless it is anycast)."""
    first = [(path, *hop_verdicts_for_path(path, enricher, registry)) for path in paths]
    proofs: dict[str, HopVerdict] = {}
    for _path, _vantage, hops in first:
        for hop in hops:
            address = hop.record.address
            if hop.physical.us_possible is False and address not in anycast_addresses:
                known = proofs.get(address)
                if known is None or (hop.record.rtt_ms or 0) < (known.record.rtt_ms or 0):
                    proofs[address] = hop
    return [
        _classify(path, vantage, hops, enricher, proofs,
                  path.destination_address in anycast_addresses)
        for path, vantage, hops in first
    ]


def _hop_columns(results: Sequence[PathResult], computed: dt.datetime) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in (
        "source", "measurement_id", "probe_id", "timestamp", "destination_address", "hop",
        "reply_address", "vantage_key", "rtt_ms", "physical_country", "physical_confidence",
        "us_possible", "bound_km", "us_distance_km", "has_correction", "corrections",
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
                physical.country, physical.confidence, physical.us_possible,
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
        "destination_operator", "legal_country", "us_hops", "correction_count", "reasons",
        "evidence", "dataset_versions", "computed_at")}
    for result in results:
        path, verdict = result.path, result.verdict
        values = (
            path.source, path.measurement_id, path.probe_id, _datetime(path.timestamp),
            path.destination_address, path.destination_name,
            result.vantage.key if result.vantage else "", verdict.verdict, verdict.confidence,
            verdict.destination.physical.country, verdict.destination.legal.operator,
            verdict.destination.legal.country,
            [f"{h.record.hop}:{h.record.address}" for h in verdict.us_hops],
            verdict.corrections, list(verdict.reasons), json.dumps(verdict.as_dict()),
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
       minIf(rtt_ms, NOT is_timeout) AS rtt_ms, false AS is_timeout
FROM traceroute_hops FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
GROUP BY source, measurement_id, probe_id, timestamp, destination_address, hop, reply_address
"""

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
) -> WindowSummary:
    """Compute and store verdicts for every traceroute in [start, end); destinations in
    ``anycast_addresses`` (found by the path graph) get the anycast class."""
    computed = computed_at or dt.datetime.now(dt.UTC)
    parameters = {"start": start, "end": end}
    rows = storage.query(_HOPS_SQL, parameters).as_dicts()
    results = verdicts_for_paths(paths_from_rows(rows), enricher, registry,
                                 anycast_addresses=anycast_addresses)
    summary = WindowSummary(paths=len(results))
    vantages = {r.vantage.key: r.vantage for r in results if r.vantage is not None}
    if vantages:
        storage.insert("vantage_points", {
            "vantage_key": [v.key for v in vantages.values()],
            "latitude": [v.latitude for v in vantages.values()],
            "longitude": [v.longitude for v in vantages.values()],
            "uncertainty_km": [v.uncertainty_km for v in vantages.values()],
            "country": [v.country for v in vantages.values()],
            "basis": [v.basis for v in vantages.values()],
            "confidence": [v.confidence for v in vantages.values()],
            "computed_at": [computed] * len(vantages),
            "fetched_at": [registry.fetched_at.get(k) for k in vantages],
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
