"""``grenswacht explain`` (both axes for one address or hostname, with the evidence) and
``grenswacht verdicts`` (stored path verdicts). Works offline with the
bundled data; never resolves names itself (no traffic leaves the machine)."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any

import typer

from consumers.enrich import HopRecord, Vantage, open_enricher
from consumers.enrich.hops import HopVerdict
from consumers.verdicts import DESCRIPTIONS, FORWARD_ONLY_NOTE
from grenswacht.commands.common import (
    FormatOption,
    StorageOption,
    console,
    fail,
    open_cli_store,
    settings,
)
from grenswacht.render import OutputFormat, print_rows
from schemas.errors import GrenswachtError


def _query(sql: str, storage: str | None, params: dict[str, Any] | None = None,
           max_rows: int = 10_000) -> tuple[list[str], list[list[Any]]]:
    store = open_cli_store(storage)
    try:
        result = store.query(sql, params, max_rows=max_rows)
    finally:
        store.close()
    return list(result.column_names), [list(r) for r in result.rows]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_HOST_SQL = (
    "SELECT DISTINCT record_data FROM dns_answers WHERE record_type IN ('A','AAAA') AND "
    "lower(trimRight(query_name, '.')) = {name:String} UNION DISTINCT "
    "SELECT DISTINCT destination_address FROM traceroute_hops WHERE "
    "lower(trimRight(destination_name, '.')) = {name:String} AND destination_address != ''"
)
_PATHS_SQL = (
    "SELECT timestamp, vantage_key, home_set, destination_name, destination_address, "
    "if(verdict = 'anycast', 'unknown', verdict) AS verdict, confidence, "
    "anycast OR verdict = 'anycast' AS anycast, arrayStringConcat(applications, ', ') "
    "AS applications, why FROM path_verdicts FINAL WHERE_CLAUSE ORDER BY timestamp DESC"
)


def _addresses_of(hostname: str, storage: str | None) -> list[str]:
    _, rows = _query(_HOST_SQL, storage, {"name": hostname.lower().rstrip(".")})
    return sorted(str(r[0]) for r in rows)


def _words(verdict: HopVerdict) -> list[str]:
    physical, legal = verdict.physical, verdict.legal
    lines = [f"[bold]{verdict.record.address}[/]"]
    where = physical.country or "unknown"
    lines.append(f"  Physically: {where} (confidence {physical.confidence})"
                 + (f" — {physical.note}" if physical.note else ""))
    for claim in physical.sources:
        said = claim.country or "no country"
        detail = f", region {claim.region}" if claim.region else ""
        lines.append(f"    {claim.source} says {said}{detail} [{claim.dataset_version}]")
    if physical.bound is not None:
        b = physical.bound
        lines.append(f"    RTT {b.rtt_ms} ms: within {b.bound_km:.0f} km of the vantage point; "
                     f"the US is at least {b.us_distance_km:.0f} km away -> "
                     + ("could be in the US" if b.us_possible else "NOT in the US (physics)"))
    else:
        lines.append("    no RTT from a located vantage point: the claim is not checked by "
                     "physics (give --rtt with --probe/--vantage/--at)")
    for correction in physical.corrections:
        lines.append(f"    [yellow]correction:[/] {correction}")
    law = legal.country or "unknown"
    lines.append(f"  Legally: {law} (confidence {legal.confidence})"
                 + (" — US CLOUD Act applies" if legal.cloud_act else ""))
    lines.append(f"    operator {legal.operator or '?'}"
                 + (f", parent {legal.parent}" if legal.parent else "")
                 + f"; {legal.basis}")
    return lines


def explain(
    target: Annotated[str, typer.Argument(help="An IP address or a hostname seen in the store.")],
    rtt: Annotated[float | None, typer.Option(help="Round-trip time in ms to check.")] = None,
    probe: Annotated[int | None, typer.Option(help="RIPE Atlas probe id of the RTT.")] = None,
    vantage: Annotated[str | None, typer.Option(help="Self-hosted vantage point name.")] = None,
    at: Annotated[str | None, typer.Option(help="Vantage position as LAT,LON.")] = None,
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Where an address physically is and whose law applies, with the evidence."""
    cfg = settings()
    try:
        enricher, registry = open_enricher(cfg.jurisdiction)
        addresses = [target] if _is_address(target) else _addresses_of(target, storage)
    except GrenswachtError as exc:
        fail(str(exc))
    if not addresses:
        fail(f"no address known for {target!r}: ingest DNS or traceroute results for it first "
             "(grenswacht does not resolve names itself)")
    position: Vantage | None = None
    if at:
        try:
            lat, lon = (float(x) for x in at.split(","))
        except ValueError:
            fail("--at wants LAT,LON, e.g. --at 52.37,4.90")
        position = Vantage("cli", lat, lon, 1.0, "", "given on the command line", "high")
    elif probe is not None or vantage:
        position = registry.resolve(probe or 0, vantage or "")
        if position is None:
            fail(f"position of {'vantage ' + vantage if vantage else f'probe {probe}'} unknown: "
                 "configure jurisdiction.atlas_probe_files or jurisdiction.vantage_points")
    verdicts = [enricher.hop_verdict(HopRecord(a, rtt, position)) for a in addresses]
    if fmt is OutputFormat.json:
        document = {"target": target, "addresses": [v.as_dict() for v in verdicts],
                    "dataset_versions": enricher.dataset_versions(), "note": FORWARD_ONLY_NOTE}
        console.print_json(json.dumps(document))
        return
    for verdict in verdicts:
        for line in _words(verdict):
            console.print(line, highlight=False, soft_wrap=True)
    console.print("Datasets: " + "; ".join(f"{k} {v}" for k, v in
                                           enricher.dataset_versions().items()),
                  highlight=False, soft_wrap=True)


def verdicts(
    application: Annotated[str | None, typer.Option(
        "--application", "-a", help="Only the paths of this application.")] = None,
    every_vantage_point: Annotated[bool, typer.Option(
        "--all/--home", help="Paths from every vantage point, or only the home ones "
        "(the ones the application verdicts are made of).")] = False,
    limit: Annotated[int, typer.Option(help="Most rows to show.")] = 100,
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Stored path verdicts, newest first (forward paths only; `grenswacht apps` gives
    one row per application)."""
    where = [] if every_vantage_point else ["home_set != ''"]
    if application:
        where.append("has(applications, {application:String})")
    sql = _PATHS_SQL.replace("WHERE_CLAUSE", f"WHERE {' AND '.join(where)}" if where else "")
    try:
        columns, rows = _query(sql, storage, {"application": application or ""},
                               max_rows=max(limit, 1))
    except GrenswachtError as exc:
        fail(str(exc))
    print_rows(console, columns, rows, fmt)
    if fmt is OutputFormat.table:
        console.print(FORWARD_ONLY_NOTE + " Classes: " + "; ".join(
            f"{k} = {v}" for k, v in DESCRIPTIONS.items()), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(explain)
    app.command()(verdicts)
