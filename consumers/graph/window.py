"""Fill a :class:`~consumers.graph.build.Window` from ClickHouse or from normalised rows.

Hop verdicts come from the ``hop_verdicts`` table the enrichment consumer writes
(:func:`evidence_from_rows`) or are computed on the spot with ``consumers.enrich``
(:func:`evidence_from_enricher`, used where nothing was enriched yet: benches, tests,
``grenswacht graph`` on a fresh store), or handed over in memory by the analysis
(:func:`evidence_from_stages`: ``consumers.pipeline`` computes hop verdicts once and gives
the detectors the same objects). Vantage positions come from ``vantage_points`` and/or a
:class:`~consumers.enrich.VantageRegistry`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from consumers.enrich import Enricher, HopVerdict, Vantage, VantageRegistry
from consumers.enrich.window import Resolver, TracedPath, hop_stage, paths_from_rows
from consumers.graph.build import (
    HopEvidence,
    TraceKey,
    Window,
    dns_from_rows,
    epoch,
    mda_from_rows,
    traces_from_rows,
)


class _Storage(Protocol):
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any: ...


# Plain constants (values are bound parameters); one WHERE per table.
_HOPS_SQL = """
SELECT source, measurement_id, probe_id, timestamp, vantage_point, destination_address,
       destination_name, probe_public_address, paris_id, hop, reply_address, is_timeout,
       rtt_ms
FROM traceroute_hops FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
  AND (empty({destinations:Array(String)}) OR destination_address IN {destinations:Array(String)}
       OR lower(trimRight(destination_name, '.')) IN {destinations:Array(String)})
"""
_PATHS_SQL = """
SELECT source, measurement_id, probe_id, toUnixTimestamp(timestamp) AS timestamp,
       any(vantage_point) AS vantage_point, destination_address,
       any(destination_name) AS destination_name,
       any(probe_public_address) AS probe_public_address, paris_id,
       arraySort(r -> (r.1, r.2), groupArray((hop, reply_index, reply_address, is_timeout,
                                              rtt_ms))) AS replies
FROM traceroute_hops FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
GROUP BY source, measurement_id, probe_id, timestamp, destination_address, paris_id
ORDER BY source, measurement_id, probe_id, timestamp, destination_address, paris_id
"""
"""One row per traceroute result: its replies as one array of (hop, reply_index,
reply_address, is_timeout, rtt_ms), in hop and reply order (:func:`read_path_rows`)."""
_MDA_SQL = """
SELECT source, measurement_id, probe_id, timestamp, vantage_point, destination_address,
       destination_name, complete, confidence, ttl, near_address, far_address, flow_ids
FROM mda_links FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
  AND (empty({destinations:Array(String)}) OR destination_address IN {destinations:Array(String)}
       OR lower(trimRight(destination_name, '.')) IN {destinations:Array(String)})
"""
_DNS_SQL = """
SELECT source, measurement_id, probe_id, timestamp, vantage_point, response_index,
       resolver_address, query_class, record_type, section, record_data, nsid,
       response_time_ms
FROM dns_answers FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
  AND (empty({destinations:Array(String)}) OR resolver_address IN {destinations:Array(String)})
"""
_VERDICTS_SQL = """
SELECT source, measurement_id, probe_id, timestamp, destination_address, hop, reply_address,
       vantage_key, rtt_ms, physical_country, physical_confidence, us_possible, bound_km,
       us_distance_km, legal_country, legal_operator, cloud_act, legal_parent
FROM hop_verdicts FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
  AND (empty({destinations:Array(String)}) OR destination_address IN {destinations:Array(String)})
"""
_VANTAGE_SQL = """
SELECT vantage_key, latitude, longitude, uncertainty_km, country, basis, confidence, area
FROM vantage_points FINAL
"""


def evidence_from_rows(
    rows: Iterable[Mapping[str, Any]],
) -> dict[tuple[TraceKey, int, str], HopEvidence]:
    """``hop_verdicts`` rows -> evidence keyed like the traces' replies."""
    out: dict[tuple[TraceKey, int, str], HopEvidence] = {}
    for row in rows:
        key: TraceKey = (str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]),
                         epoch(row["timestamp"]), str(row["destination_address"]))
        out[(key, int(row["hop"]), str(row["reply_address"]))] = HopEvidence(
            str(row["reply_address"]), int(row["hop"]), row.get("rtt_ms"),
            str(row.get("vantage_key") or ""), str(row.get("physical_country") or ""),
            str(row.get("physical_confidence") or ""), row.get("us_possible"),
            row.get("bound_km"), row.get("us_distance_km"),
            str(row.get("legal_country") or ""), str(row.get("legal_operator") or ""),
            bool(row.get("cloud_act")), str(row.get("legal_parent") or ""),
        )
    return out


def evidence_from_stages(
    stages: Iterable[tuple[TracedPath, Vantage | None, Sequence[HopVerdict]]],
) -> tuple[dict[tuple[TraceKey, int, str], HopEvidence], dict[str, Vantage]]:
    """Evidence keyed like the traces' replies, from hop verdicts computed in memory
    (``consumers.enrich.window.hop_stage``: the analysis hands its own, computed once)."""
    out: dict[tuple[TraceKey, int, str], HopEvidence] = {}
    vantages: dict[str, Vantage] = {}
    for path, vantage, hops in stages:
        key: TraceKey = (path.source, path.measurement_id, path.probe_id, epoch(path.timestamp),
                         path.destination_address)
        if vantage is not None:
            vantages[vantage.key] = vantage
        for verdict in hops:
            physical, legal, bound = verdict.physical, verdict.legal, verdict.physical.bound
            out[(key, verdict.record.hop, verdict.record.address)] = HopEvidence(
                verdict.record.address, verdict.record.hop, verdict.record.rtt_ms,
                vantage.key if vantage else "", physical.country,
                physical.confidence, physical.us_possible,
                bound.bound_km if bound else None, bound.us_distance_km if bound else None,
                legal.country, legal.operator, legal.cloud_act, legal.parent,
            )
    return out, vantages


def evidence_from_enricher(
    rows: Sequence[Mapping[str, Any]], enricher: Enricher, registry: VantageRegistry,
    anycast_addresses: frozenset[str] = frozenset(),
) -> tuple[dict[tuple[TraceKey, int, str], HopEvidence], dict[str, Vantage]]:
    """Hop verdicts computed with ``consumers.enrich`` for ``traceroute_hops`` rows."""
    stages = hop_stage(paths_from_rows(rows), enricher, registry, anycast_addresses)
    return evidence_from_stages((s.path, s.vantage, s.hops) for s in stages)


def window_from_rows(
    start: dt.datetime,
    end: dt.datetime,
    hop_rows: Sequence[Mapping[str, Any]],
    *,
    mda_rows: Iterable[Mapping[str, Any]] = (),
    dns_rows: Iterable[Mapping[str, Any]] = (),
    enricher: Enricher | None = None,
    registry: VantageRegistry | None = None,
    applications: Mapping[str, Sequence[str]] | None = None,
) -> Window:
    """A window from normalised rows (``schemas.normalize`` output or query results)."""
    window = Window(start, end, traces_from_rows(hop_rows), mda_from_rows(mda_rows),
                    dns_from_rows(dns_rows),
                    applications={k: list(v) for k, v in (applications or {}).items()})
    if registry is not None:
        locate(window, registry)
    if enricher is not None and registry is not None:
        window.evidence, vantages = evidence_from_enricher(hop_rows, enricher, registry)
        window.vantages.update(vantages)
    return window


def locate(window: Window, registry: Resolver) -> None:
    """Vantage positions for every trace, MDA result and DNS sample of the window."""
    wanted = [(t.vantage_key, t.probe_id, t.vantage_point, t.probe_public_address)
              for t in window.traces]
    wanted += [(m.vantage_key, m.probe_id, m.vantage_point, "") for m in window.mdas]
    wanted += [(d.vantage_key, d.probe_id, d.vantage_point, d.probe_public_address)
               for d in window.dns]
    for key, probe, name, public in wanted:
        if key not in window.vantages:
            found = registry.resolve(probe, name, public)
            if found is not None:
                window.vantages[key] = found


def read_rows(storage: _Storage, start: dt.datetime, end: dt.datetime,
              destinations: Sequence[str] = ()) -> tuple[list[dict[str, Any]],
                                                          list[dict[str, Any]],
                                                          list[dict[str, Any]]]:
    """The ``traceroute_hops``, ``mda_links`` and ``dns_answers`` rows of [start, end)."""
    parameters = {"start": start, "end": end,
                  "destinations": [d.lower().rstrip(".") for d in destinations]}
    return (storage.query(_HOPS_SQL, parameters).as_dicts(),
            storage.query(_MDA_SQL, parameters).as_dicts(),
            storage.query(_DNS_SQL, parameters).as_dicts())


def read_path_rows(storage: _Storage, start: dt.datetime, end: dt.datetime,
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """As :func:`read_rows`, with the ``traceroute_hops`` rows of [start, end) as one row
    per result (``timestamp`` in epoch seconds, ``replies`` an array): what the analysis
    reads. :func:`consumers.enrich.paths.paths_from_rows` and
    :func:`consumers.graph.build.traces_from_rows` take either shape and build the same
    paths and traces (``tests/schemas/test_explode.py`` compares them over the corpus)."""
    parameters = {"start": start, "end": end, "destinations": []}
    return (storage.query(_PATHS_SQL, parameters).as_dicts(),
            storage.query(_MDA_SQL, parameters).as_dicts(),
            storage.query(_DNS_SQL, parameters).as_dicts())


def stored_vantages(storage: _Storage) -> dict[str, Vantage]:
    """Vantage positions in the ``vantage_points`` table."""
    return {str(row["vantage_key"]): Vantage(
        str(row["vantage_key"]), float(row["latitude"]), float(row["longitude"]),
        float(row["uncertainty_km"]), str(row["country"]), str(row["basis"]),
        str(row["confidence"]), str(row.get("area") or ""))
        for row in storage.query(_VANTAGE_SQL).as_dicts()}


def read_window(
    storage: _Storage,
    start: dt.datetime,
    end: dt.datetime,
    *,
    destinations: Sequence[str] = (),
    applications: Mapping[str, Sequence[str]] | None = None,
    enricher: Enricher | None = None,
    registry: VantageRegistry | None = None,
) -> Window:
    """Read [start, end) from ClickHouse (optionally only some destinations/hostnames).

    Hop verdicts are read from ``hop_verdicts``; when an ``enricher`` and ``registry`` are
    given, traces without stored verdicts are enriched on the spot."""
    parameters = {"start": start, "end": end,
                  "destinations": [d.lower().rstrip(".") for d in destinations]}
    hop_rows, mda_rows, dns_rows = read_rows(storage, start, end, destinations)
    window = window_from_rows(start, end, hop_rows, mda_rows=mda_rows, dns_rows=dns_rows,
                              applications=applications)
    window.vantages.update(stored_vantages(storage))
    if registry is not None:
        locate(window, registry)
    window.evidence = evidence_from_rows(storage.query(_VERDICTS_SQL, parameters).as_dicts())
    if enricher is not None and registry is not None:
        enriched = {t.key for t in window.traces} - {key for key, _h, _a in window.evidence}
        missing = [r for r in hop_rows if (
            str(r["source"]), int(r["measurement_id"]), int(r["probe_id"]),
            epoch(r["timestamp"]), str(r["destination_address"])) in enriched]
        if missing:
            computed, vantages = evidence_from_enricher(missing, enricher, registry)
            window.evidence.update(computed)
            for key, vantage in vantages.items():
                window.vantages.setdefault(key, vantage)
    return window
