"""The verdict tables and the verdict message: rows out of the analysis, and the period
queries the application stage reads (``consumers.pipeline``).

Column builders are pure (results in, ClickHouse columns out); the two readers take the
home paths and the load-balanced US branches of a period from what earlier windows stored
(the current window's rows are stored before they are read: one derivation). The message
builder turns path results into :class:`schemas.verdicts.VerdictMessage` objects.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from consumers.applications import ApplicationVerdict, Branch, HomePath
from consumers.enrich.geo import is_public
from consumers.enrich.hops import HopVerdict
from consumers.enrich.physics import vantage_us_distance_km
from consumers.enrich.vantage import Vantage, vantage_key
from consumers.enrich.window import PathResult
from schemas.verdicts import MAX_PATHS, HopMessage, PathMessage, VerdictMessage


class _Storage(Protocol):
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any: ...


def _datetime(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _columns(names: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for row in rows:
        for name, value in zip(names, row, strict=True):
            columns[name].append(value)
    return columns


def _vantage_key(result: PathResult) -> str:
    """The vantage point's key, also when its position is unknown."""
    if result.vantage is not None:
        return result.vantage.key
    return vantage_key(result.path.probe_id, result.path.vantage_point)


def vantage_columns(vantages: Iterable[Vantage], computed: dt.datetime,
                    fetched: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
    """``fetched``: vantage key -> when the probe API answered (``consumers.vantage_points``);
    ``us_distance_km`` the lower bound to the US that ``reply_physics`` compares replies with
    (migration 070)."""
    found = fetched or {}
    return _columns(("vantage_key", "latitude", "longitude", "uncertainty_km", "area",
                     "country", "basis", "confidence", "computed_at", "fetched_at",
                     "us_distance_km"),
                    ((v.key, v.latitude, v.longitude, v.uncertainty_km, v.area, v.country,
                      v.basis, v.confidence, computed, found.get(v.key),
                      vantage_us_distance_km(v)) for v in vantages))


HOP_COLUMNS = (
    "source", "measurement_id", "probe_id", "timestamp", "destination_address", "hop",
    "reply_address", "vantage_key", "rtt_ms", "physical_country", "physical_confidence",
    "physical_bloc", "physical_basis", "candidate_countries", "us_possible", "bound_km",
    "us_distance_km", "has_correction", "corrections",
    "legal_operator", "legal_parent", "legal_country", "legal_confidence", "cloud_act",
    "asn", "as_name", "evidence", "dataset_versions", "computed_at")


def hop_columns(results: Sequence[PathResult], computed: dt.datetime) -> dict[str, list[Any]]:
    def rows() -> Iterable[Sequence[Any]]:
        for result in results:
            path = result.path
            for hop in result.hops:
                physical, legal, bound = hop.physical, hop.legal, hop.physical.bound
                yield (
                    path.source, path.measurement_id, path.probe_id,
                    _datetime(path.timestamp), path.destination_address,
                    min(hop.record.hop, 255), hop.record.address,
                    _vantage_key(result), hop.record.rtt_ms,
                    physical.country, physical.confidence, physical.bloc, physical.basis,
                    list(physical.candidates), physical.us_possible,
                    bound.bound_km if bound else None, bound.us_distance_km if bound else None,
                    bool(physical.corrections), list(physical.corrections), legal.operator,
                    legal.parent, legal.country, legal.confidence, legal.cloud_act, legal.asn,
                    legal.as_name,
                    json.dumps({"physical": physical.as_dict(), "legal": legal.as_dict()}),
                    hop.dataset_versions, computed,
                )
    return _columns(HOP_COLUMNS, rows())


PATH_COLUMNS = (
    "source", "measurement_id", "probe_id", "timestamp", "destination_address",
    "destination_name", "vantage_key", "verdict", "confidence", "destination_country",
    "destination_bloc", "destination_basis", "destination_operator", "legal_country",
    "us_hops", "correction_count", "end_to_end_refutations", "reasons",
    "evidence", "dataset_versions", "computed_at", "home_set", "anycast", "flow_id", "kind",
    "applications", "why", "destination_rtt_ms", "pipeline")


def path_columns(results: Sequence[PathResult], computed: dt.datetime,
                 pipeline: int) -> dict[str, list[Any]]:
    return _columns(PATH_COLUMNS, (
        (r.path.source, r.path.measurement_id, r.path.probe_id, _datetime(r.path.timestamp),
         r.path.destination_address, r.path.destination_name, _vantage_key(r),
         r.verdict.verdict, r.verdict.confidence,
         r.verdict.destination.physical.country, r.verdict.destination.physical.bloc,
         r.verdict.destination.physical.basis, r.verdict.destination.legal.operator,
         r.verdict.destination.legal.country,
         [f"{h.record.hop}:{h.record.address}" for h in r.verdict.us_hops],
         r.verdict.corrections, len(r.verdict.refutations), list(r.verdict.reasons),
         json.dumps(r.verdict.as_dict()),
         r.verdict.destination.dataset_versions, computed, r.home_set, r.verdict.anycast,
         r.path.paris_id, r.path.kind, list(r.applications), r.verdict.why,
         r.verdict.destination.record.rtt_ms, pipeline)
        for r in results))


APPLICATION_COLUMNS = (
    "application", "window_start", "window_end", "verdict", "path_count", "class_counts",
    "hostnames", "addresses", "reasons", "dataset_versions", "computed_at", "confidence",
    "period_start", "period_end", "shares", "worst_branch", "home_sets", "vantage_points",
    "anycast", "why", "outliers", "cname_chains", "providers")


def application_columns(apps: Sequence[ApplicationVerdict], start: dt.datetime,
                        end: dt.datetime, versions: Mapping[str, str],
                        computed: dt.datetime) -> dict[str, list[Any]]:
    return _columns(APPLICATION_COLUMNS, (
        (a.application, start, end, a.verdict, a.paths, a.class_counts, list(a.hostnames),
         list(a.addresses), list(a.reasons), dict(versions), computed, a.confidence,
         a.period_start, a.period_end, a.shares, a.worst_branch, list(a.home_sets),
         list(a.vantage_points), a.anycast, a.why, list(a.outliers), list(a.cname_chains),
         list(a.providers))
        for a in apps))


_HOME_PATHS_SQL = """
SELECT application, verdict, confidence, vantage_key, home_set, destination_address,
       toUnixTimestamp(timestamp) AS ts, anycast, why, kind, destination_rtt_ms
FROM path_verdicts FINAL ARRAY JOIN applications AS application
WHERE home_set != '' AND timestamp > {start:DateTime64(3)} AND timestamp <= {end:DateTime64(3)}
  AND application IN {applications:Array(String)}
"""


def read_home_paths(storage: _Storage, applications: Sequence[str], start: dt.datetime,
                    end: dt.datetime) -> dict[str, list[HomePath]]:
    """Stored home path verdicts of ``applications`` in (start, end]."""
    out: dict[str, list[HomePath]] = defaultdict(list)
    rows = storage.query(_HOME_PATHS_SQL, {"start": start, "end": end,
                                           "applications": list(applications)}).rows
    for app, verdict, confidence, vantage, home, address, stamp, anycast, why, kind, rtt in rows:
        out[str(app)].append(HomePath(str(verdict), str(confidence), str(vantage), str(home),
                                      str(address), int(stamp), bool(anycast), str(why),
                                      str(kind), rtt))
    return out


_BRANCHES_SQL = """
SELECT finding_id, destination_address, applications, vantage_keys, confidence, summary,
       evidence, toUnixTimestamp64Milli(window_start) / 1000 AS starts,
       toUnixTimestamp64Milli(window_end) / 1000 AS ends
FROM findings FINAL
WHERE kind = 'load_balancer' AND window_end > {start:DateTime64(3)}
  AND window_start <= {end:DateTime64(3)} AND hasAny(applications, {applications:Array(String)})
"""


def read_us_branches(storage: _Storage, applications: Sequence[str], start: dt.datetime,
                     end: dt.datetime) -> dict[str, list[Branch]]:
    """Load-balancer findings with a branch through the US, per application."""
    out: dict[str, list[Branch]] = defaultdict(list)
    rows = storage.query(_BRANCHES_SQL, {"start": start, "end": end,
                                         "applications": list(applications)}).as_dicts()
    for row in rows:
        evidence = json.loads(row["evidence"] or "{}")
        if not evidence.get("us_branches"):
            continue
        branch = Branch(str(row["destination_address"]), tuple(row["vantage_keys"]),
                        str(row["confidence"]), str(row["summary"]), str(row["finding_id"]),
                        float(row["starts"]), float(row["ends"]))
        for app in row["applications"]:
            if app in applications:
                out[str(app)].append(branch)
    return out


DNS_SQL = """
SELECT source, measurement_id, probe_id, timestamp, vantage_point, response_index,
       query_name, section, record_name, record_type, record_data
FROM dns_answers FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
  AND section = 'answer' AND record_type IN ('A', 'AAAA', 'CNAME')
  AND lower(trimRight(query_name, '.')) IN {hostnames:Array(String)}
"""


def _hop_message(hop: HopVerdict) -> HopMessage:
    physical, legal, bound = hop.physical, hop.legal, hop.physical.bound
    return HopMessage(
        hop=hop.record.hop, address=hop.record.address,
        is_destination=hop.record.is_destination, rtt_ms=hop.record.rtt_ms,
        physical_country=physical.country, physical_confidence=physical.confidence,
        us_possible=physical.us_possible,
        bound_km=round(bound.bound_km, 1) if bound else None,
        us_distance_km=round(bound.us_distance_km, 1) if bound else None,
        legal_operator=legal.operator, legal_parent=legal.parent, legal_country=legal.country,
        sources=[f"{c.source} ({c.dataset_version}): {c.country or '?'}"
                 for c in physical.sources],
        note=physical.note)


def path_message(result: PathResult) -> PathMessage:
    """One path for the verdicts topic: its class and its located replies."""
    path, verdict = result.path, result.verdict
    located = [h for h in result.hops if not h.record.is_destination
               and is_public(h.record.address) and (h.physical.country or h.legal.country)]
    return PathMessage(
        source=path.source, measurement_id=path.measurement_id, probe_id=path.probe_id,
        timestamp=_datetime(path.timestamp), destination_address=path.destination_address,
        destination_name=path.destination_name,
        vantage_key=_vantage_key(result),
        vantage_country=result.vantage.country if result.vantage else "",
        home_set=result.home_set, address_family=path.address_family, flow_id=path.paris_id,
        kind=path.kind, verdict=verdict.verdict, confidence=verdict.confidence,
        anycast=verdict.anycast, applications=list(result.applications), why=verdict.why,
        reasons=list(verdict.reasons), us_hops=[h.record.hop for h in verdict.us_hops],
        hops=[*(_hop_message(h) for h in located), _hop_message(verdict.destination)])


def verdict_messages(results: Sequence[PathResult], start: dt.datetime, end: dt.datetime,
                     computed: dt.datetime) -> list[VerdictMessage]:
    """The window's path verdicts, one message per target and chunk of paths."""
    by_target: dict[str, list[PathMessage]] = defaultdict(list)
    for result in results:
        message = path_message(result)
        by_target[message.target].append(message)
    out = []
    for target, paths in sorted(by_target.items()):
        paths.sort(key=lambda p: (p.timestamp, p.vantage_key))
        for index in range(0, len(paths), MAX_PATHS):
            out.append(VerdictMessage(window_start=start, window_end=end, computed_at=computed,
                                      target=target, paths=paths[index:index + MAX_PATHS]))
    return out
