"""``grenswacht explain`` (both axes for one address or hostname, with the evidence) and
``grenswacht verdicts`` (stored path verdicts). Works offline with the
bundled data; never resolves names itself (no traffic leaves the machine)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError

from consumers.enrich import Enricher, Vantage, VantageRegistry, open_enricher
from consumers.enrich.bounds import (
    AddressLocation,
    Observation,
    VantageBound,
    locate_address,
    read_observations,
)
from consumers.enrich.cname import default_suffixes, named_operator, resolutions
from consumers.graph import anycast_addresses, read_findings
from consumers.vantage_points import refresh_registry
from consumers.verdict_tables import DNS_SQL
from consumers.verdicts import DESCRIPTIONS, FORWARD_ONLY_NOTE
from grenswacht.commands.common import (
    FormatOption,
    StorageOption,
    console,
    fail,
    open_cli_store,
    settings,
)
from grenswacht.render import OutputFormat, print_json, print_rows, say
from scheduler.inventory import Hostname
from schemas.errors import GrenswachtError
from schemas.findings import Finding
from schemas.store import Store


def _query(sql: str, storage: str | None, params: dict[str, Any] | None = None,
           max_rows: int = 10_000) -> tuple[list[str], list[list[Any]]]:
    store = open_cli_store(storage)
    try:
        result = store.query(sql, params, max_rows=max_rows)
    finally:
        store.close()
    return list(result.column_names), [list(r) for r in result.rows]


_TARGETS_SQL = (
    "SELECT DISTINCT destination_address FROM traceroute_hops WHERE "
    "lower(trimRight(destination_name, '.')) = {name:String} AND destination_address != ''"
)
_EVER = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(2200, 1, 1, tzinfo=dt.UTC))
_PATHS_SQL = (
    "SELECT timestamp, vantage_key, home_set, destination_name, destination_address, "
    "if(verdict = 'anycast', 'unknown', verdict) AS verdict, confidence, "
    "anycast OR verdict = 'anycast' AS anycast, arrayStringConcat(applications, ', ') "
    "AS applications, why FROM path_verdicts FINAL WHERE_CLAUSE ORDER BY timestamp DESC"
)


def _addresses_of(store: Store, hostname: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """The addresses the store holds for ``hostname`` — the A/AAAA at the end of the CNAME
    chain of every vantage point's DNS answers (``consumers.enrich.cname``, as the analysis
    maps applications), and the targets of traceroutes aimed at the name — and the CNAME
    chains seen."""
    rows = store.query(DNS_SQL, {"start": _EVER[0], "end": _EVER[1],
                                 "hostnames": [hostname]}).as_dicts()
    found = resolutions(rows, [hostname])
    addresses = {a for r in found for a in r.addresses}
    addresses |= {str(r[0]) for r in store.query(_TARGETS_SQL, {"name": hostname}).rows}
    chains = sorted({r.chain for r in found if len(r.chain) > 1})
    return sorted(addresses), chains


def _target(text: str) -> tuple[str, bool]:
    """``(normalised target, is an address)``; invalid input ends the command."""
    value = text.strip()
    if not value:
        fail("give an IP address or a hostname to explain (the argument is empty)")
    try:
        return ipaddress.ip_address(value).compressed, True
    except ValueError:
        pass
    if ":" in value or all(c.isdigit() or c == "." for c in value):
        fail(f"{text!r} is not a valid IP address")
    try:
        return TypeAdapter(Hostname).validate_python(value), False
    except ValidationError:
        fail(f"{text!r} is neither an IP address nor a valid hostname")


def _position(rtt: float | None, probe: int | None, vantage: str | None, at: str | None,
              registry: VantageRegistry) -> Observation | None:
    """The RTT given on the command line, with the position it was measured from."""
    given = at is not None or probe is not None or bool(vantage)
    if rtt is None and not given:
        return None
    if rtt is None or not given or rtt <= 0:
        fail("--rtt (a positive number of ms) goes with --probe, --vantage or --at (where "
             "it was measured)")
    position: Vantage | None
    if at is not None:
        try:
            lat, lon = (float(x) for x in at.split(","))
        except ValueError:
            fail("--at wants LAT,LON, e.g. --at 52.37,4.90")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            fail("--at wants a latitude in [-90, 90] and a longitude in [-180, 180]")
        position = Vantage("cli", lat, lon, 1.0, "", "given on the command line", "high")
    else:
        position = registry.resolve(probe or 0, vantage or "")
        if position is None:
            fail(f"position of {'vantage ' + vantage if vantage else f'probe {probe}'} unknown: "
                 "configure jurisdiction.atlas_probe_files or jurisdiction.vantage_points")
    return Observation(position, rtt, ("command line",))


@dataclass(frozen=True, slots=True)
class _Explained:
    location: AddressLocation
    findings: list[Finding]
    unlocated: list[str]

    def as_dict(self) -> dict[str, Any]:
        location = self.location
        return {
            **location.verdict.as_dict(),
            "anycast": location.anycast,
            "tightest_vantage": location.tightest.observation.vantage.key
            if location.tightest else None,
            "proof_vantage": location.proof.observation.vantage.key if location.proof else None,
            "bounds": [b.as_dict() for b in location.bounds],
            "unlocated_vantage_points": self.unlocated,
            "anycast_findings": [f.model_dump(mode="json") for f in self.findings],
        }


def _explain_address(store: Store, enricher: Enricher, registry: VantageRegistry,
                     address: str, given: Observation | None) -> _Explained:
    observations, unlocated = read_observations(store, address, registry)
    if given is not None:
        observations.append(given)
    findings = read_findings(store, ["anycast"], subject=address)
    location = locate_address(enricher, address, observations,
                              anycast=address in anycast_addresses(findings))
    return _Explained(location, findings, unlocated)


def _bound_words(bound: VantageBound) -> str:
    seen, physical = bound.observation, bound.verdict.physical
    vantage = seen.vantage
    where = f"{vantage.key} ({vantage.country or '?'}, {vantage.basis})"
    us = (f"the US is at least {physical.bound.us_distance_km:,.0f} km away"
          if physical.bound else "")
    return (f"{seen.rtt_ms:g} ms from {where}, {'/'.join(seen.kinds)}, {seen.results} "
            f"result(s): within {seen.radius_km:,.0f} km; {us} -> "
            + ("NOT in the US (physics)" if bound.proves_not_us else "could be in the US"))


def _say_address(explained: _Explained, top: int) -> None:
    location, verdict = explained.location, explained.location.verdict
    physical, legal = verdict.physical, verdict.legal
    say(console, location.address, style="bold")
    say(console, f"  Physically: {physical.where} (confidence "
        f"{physical.confidence})" + (f" — {physical.note}" if physical.note else ""))
    for claim in physical.sources:
        region = f", region {claim.region}" if claim.region else ""
        say(console, f"    {claim.source} says {claim.country or 'no country'}{region} "
            f"[{claim.dataset_version}]")
    for finding in explained.findings:
        window = f"{finding.window_end:%Y-%m-%d %H:%M}"
        say(console, f"    {'anycast' if location.anycast else 'possibly anycast'} "
            f"({finding.confidence} confidence, window ending {window} UTC): "
            f"{finding.summary}", style="yellow")
    if location.anycast:
        say(console, "    no single place is claimed: each vantage point below reaches its "
            "nearest site", style="yellow")
    if location.tightest is not None:
        say(console, f"    tightest bound: {_bound_words(location.tightest)}")
        if location.proof is not None and location.proof is not location.tightest:
            say(console, f"    proof that it is not in the US: {_bound_words(location.proof)}")
        elif location.proof is None and not location.anycast:
            say(console, "    no vantage point proves that it is not in the US")
        proving = sum(1 for b in location.bounds if b.proves_not_us)
        say(console, f"    {len(location.bounds)} vantage point(s) bound it, {proving} of them "
            "prove it is not in the US"
            + (f"; {len(explained.unlocated)} more measured it from an unknown position"
               if explained.unlocated else ""))
    else:
        say(console, "    no RTT from a located vantage point in the store: the claim is not "
            "checked by physics (ingest traceroute or ping results that reach it, or give "
            "--rtt with --probe/--vantage/--at)"
            + (f"; {len(explained.unlocated)} vantage point(s) measured it from an unknown "
               "position" if explained.unlocated else ""))
    for correction in physical.corrections:
        say(console, f"    correction: {correction}", style="yellow")
    say(console, f"  Legally: {legal.country or 'unknown'} (confidence {legal.confidence})"
        + (" — US CLOUD Act applies" if legal.cloud_act else ""))
    say(console, f"    operator {legal.operator or '?'}"
        + (f", parent {legal.parent}" if legal.parent else "") + f"; {legal.basis}")
    if location.bounds and top > 0:
        print_rows(console, ["vantage point", "country", "rtt_ms", "within_km", "not_in_us",
                             "results"],
                   [[b.observation.vantage.key, b.observation.vantage.country,
                     round(b.observation.rtt_ms, 3), round(b.observation.radius_km),
                     "yes" if b.proves_not_us else "no", b.observation.results]
                    for b in location.bounds[:top]], OutputFormat.table,
                   title=f"tightest {min(top, len(location.bounds))} of "
                         f"{len(location.bounds)} bounds")


_CSV_COLUMNS = ("address", "physical_country", "physical_confidence", "us_possible",
                "tightest_vantage", "tightest_rtt_ms", "tightest_within_km", "proof_vantage",
                "vantage_points", "anycast", "legal_country", "operator", "parent",
                "cloud_act")


def _csv_row(explained: _Explained) -> list[Any]:
    location = explained.location
    physical, legal = location.verdict.physical, location.verdict.legal
    tightest = location.tightest.observation if location.tightest else None
    return [location.address, physical.country, physical.confidence, physical.us_possible,
            tightest.vantage.key if tightest else "", tightest.rtt_ms if tightest else None,
            round(tightest.radius_km) if tightest else None,
            location.proof.observation.vantage.key if location.proof else "",
            len(location.bounds), location.anycast, legal.country, legal.operator,
            legal.parent, legal.cloud_act]


def explain(
    target: Annotated[str, typer.Argument(help="An IP address, or a hostname whose addresses "
                                               "the store holds (DNS answers, traceroute "
                                               "targets).")],
    rtt: Annotated[float | None, typer.Option(help="A round-trip time in ms to check as "
                                                   "well (with --probe, --vantage or --at).")
                   ] = None,
    probe: Annotated[int | None, typer.Option(help="RIPE Atlas probe id of the RTT.")] = None,
    vantage: Annotated[str | None, typer.Option(help="Self-hosted vantage point name.")] = None,
    at: Annotated[str | None, typer.Option(help="Vantage position as LAT,LON.")] = None,
    top: Annotated[int, typer.Option(min=0, help="Tightest vantage-point bounds listed per "
                                                 "address (table; JSON lists all).")] = 5,
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Where an address physically is and whose law applies, with the evidence: the
    smallest RTT of every vantage point that measured it (traceroute replies, pings, DNS
    responses in the store) bounds it, and stored anycast findings are shown. Reads the
    store through `grenswacht run` when it is up."""
    cfg = settings()
    name, is_address = _target(target)
    store = open_cli_store(storage)
    try:
        enricher, registry = open_enricher(cfg.jurisdiction)
        refresh_registry(registry, store)
        given = _position(rtt, probe, vantage, at, registry)
        addresses, chains = ([name], []) if is_address else _addresses_of(store, name)
        if not addresses:
            seen = "; ".join(" -> ".join(c) for c in chains)
            fail(f"no address known for {name!r}: the store holds no A/AAAA answer for it "
                 + (f"(only the CNAME chain {seen}) " if seen else "")
                 + "and no traceroute towards it; ingest such results first (grenswacht "
                 "does not resolve names itself)")
        explained = [_explain_address(store, enricher, registry, a, given) for a in addresses]
    except GrenswachtError as exc:
        fail(str(exc))
    finally:
        store.close()
    named = [(chain, named_operator(chain, default_suffixes(), enricher.operators))
             for chain in chains]
    if fmt is OutputFormat.json:
        print_json(console, {"target": name, "addresses": [e.as_dict() for e in explained],
                             "cname_chains": [{"chain": list(chain),
                                               "operator": legal.as_dict() if legal else None}
                                              for chain, legal in named],
                             "dataset_versions": enricher.dataset_versions(),
                             "note": FORWARD_ONLY_NOTE})
        return
    if fmt is OutputFormat.csv:
        print_rows(console, _CSV_COLUMNS, [_csv_row(e) for e in explained], fmt)
        return
    for chain, legal in named:
        say(console, "CNAME chain " + " -> ".join(chain)
            + (f": {legal.basis}" if legal else ""))
    for item in explained:
        _say_address(item, top)
    say(console, "Datasets: " + "; ".join(f"{k} {v}" for k, v in
                                          enricher.dataset_versions().items()))


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
