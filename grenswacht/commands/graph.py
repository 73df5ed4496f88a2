"""``grenswacht findings`` (stored path-graph findings) and ``grenswacht graph`` (draw the
path graph of an application or destination as SVG / GraphML)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from consumers.enrich import open_enricher
from consumers.graph import read_findings, read_window
from consumers.graph.draw import write_graphml, write_png, write_svg
from consumers.graph.load_balancer import detect as detect_balancers
from consumers.graph.picture_text import LANGUAGES
from consumers.verdicts import FORWARD_ONLY_NOTE
from grenswacht.commands.common import (
    FormatOption,
    StorageOption,
    console,
    fail,
    open_cli_store,
    settings,
)
from grenswacht.render import OutputFormat, print_json, print_rows, say
from schemas.errors import GrenswachtError
from schemas.findings import FINDING_KINDS, Finding

COLUMNS = ("kind", "confidence", "destination_address", "subject", "window_end", "summary")
TABLE_COLUMNS = ("kind", "confidence", "subject", "window_end", "summary")
"""The table leaves out ``destination_address`` (the subject names it, or it is a hop's
finding on the way there) so the summary keeps room at 80 columns; CSV and JSON have all."""


def _stored(kinds: list[str], storage: str | None) -> list[Finding]:
    store = open_cli_store(storage)
    try:
        return read_findings(store, kinds)
    finally:
        store.close()


def findings(
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="load_balancer, route_change, anycast or us_transit (repeatable).")] = None,
    fmt: FormatOption = OutputFormat.table,
    storage: StorageOption = None,
) -> None:
    """List the findings of the path-graph detectors (load balancers, anycast, US transit)."""
    kinds = kind or []
    unknown = [k for k in kinds if k not in FINDING_KINDS]
    if unknown:
        fail(f"unknown kind {', '.join(unknown)}: use {', '.join(FINDING_KINDS)}")
    try:
        found = _stored(kinds, storage)
    except GrenswachtError as exc:
        fail(str(exc))
    if fmt is OutputFormat.json:
        print_json(console, [f.model_dump(mode="json") for f in found])
        return
    if fmt is OutputFormat.csv:
        print_rows(console, COLUMNS, [[f.kind, f.confidence, f.destination_address, f.subject,
                                       f.window_end, f.summary] for f in found], fmt)
        return
    rows = [[f.kind, f.confidence, f.subject, f"{f.window_end:%Y-%m-%d %H:%M}", f.summary]
            for f in found]
    print_rows(console, TABLE_COLUMNS, rows, fmt, title=f"{len(found)} findings",
               optional=("window_end",))
    say(console, FORWARD_ONLY_NOTE, style="dim")


def _hostnames(store: Any, target: str) -> list[str]:
    rows = store.query("SELECT hostnames FROM applications FINAL WHERE application = {a:String}",
                       {"a": target}).rows
    return [str(h) for h in rows[0][0]] if rows else [target]


def graph(
    target: Annotated[str, typer.Argument(help="Application name, hostname or address.")],
    svg: Annotated[Path | None, typer.Option("--svg", help="Write the picture as SVG.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Write the picture as PNG.")] = None,
    graphml: Annotated[Path | None, typer.Option(
        "--graphml", help="Write the whole graph (not condensed) as GraphML.")] = None,
    language: Annotated[str, typer.Option(
        "--lang", help="Language of the words in the picture: en or nl.")] = "en",
    days: Annotated[float, typer.Option("--days", help="Window: the last N days "
                                        "(0 = everything stored).")] = 0,
    storage: StorageOption = None,
) -> None:
    """Draw the path graph towards an application or destination with Graphviz, left to
    right: hops filled by physical country, grouped by operator, US hops and load balancers
    marked, a legend inside; condensed (silent runs, access hops) and capped to stay
    readable."""
    if svg is None and png is None and graphml is None:
        fail("give --svg FILE, --png FILE and/or --graphml FILE")
    if language not in LANGUAGES:
        fail(f"unknown language {language}: use {' or '.join(LANGUAGES)}")
    cfg = settings()
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(days=days) if days else dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    store = open_cli_store(storage)
    try:
        enricher, registry = open_enricher(cfg.jurisdiction)
        names = _hostnames(store, target)
        window = read_window(store, start, end, destinations=names,
                             enricher=enricher, registry=registry)
    except GrenswachtError as exc:
        fail(str(exc))
    finally:
        store.close()
    if not window.traces and not window.mdas:
        fail(f"no traceroute or MDA result towards {target} in the window")
    from consumers.graph.build import build_graph

    path_graph = build_graph(window.traces, window.mdas, window.address_evidence())
    title = f"{target}: {len(window.traces)} traceroutes, {len(window.mdas)} MDA results"
    drawing = {"title": title, "findings": detect_balancers(window),
               "vantages": window.vantages, "language": language}
    try:
        if svg is not None:
            write_svg(path_graph, svg, **drawing)
        if png is not None:
            write_png(path_graph, png, **drawing)
    except GrenswachtError as exc:
        fail(str(exc))
    if graphml is not None:
        write_graphml(path_graph, graphml)
    say(console, f"{path_graph.number_of_nodes()} nodes, {path_graph.number_of_edges()} "
        f"edges -> {', '.join(str(p) for p in (svg, png, graphml) if p)}")


def register(app: typer.Typer) -> None:
    app.command()(findings)
    app.command()(graph)
