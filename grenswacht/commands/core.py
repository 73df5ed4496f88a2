"""Core commands: ingest, sql, run, migrate, status."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from consumers.analysis import result_window
from consumers.ingest import IngestConsumer, IngestStats
from consumers.storage import Storage, open_storage
from grenswacht.client import local_endpoint, running_endpoint
from grenswacht.commands.common import (
    FormatOption,
    ParamOption,
    StorageOption,
    console,
    err_console,
    fail,
    open_cli_store,
    parse_params,
    set_config,
    settings,
)
from grenswacht.files import ReadLimits, expand_paths, file_size, read_results
from grenswacht.render import OutputFormat, flatten, print_json, print_rows, say
from grenswacht.settings import Settings
from grenswacht.store import RemoteStore
from schemas import topics
from schemas.bus import open_bus
from schemas.errors import GrenswachtError, InputError
from schemas.redact import redact
from schemas.store import Store

CHUNK = 5000
CHUNK_BYTES = 16 * 1024 * 1024
"""Bytes of records queued on the command's bus before they are drained into the store."""
REMOTE_CHUNK_BYTES = 8 * 1024 * 1024
"""Bytes of records per upload to a running ``grenswacht run``."""
DEAD_LETTER_HINT = 'why: grenswacht sql "SELECT origin, reason, detail FROM dead_letters"'


def _main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML settings file.", exists=False)
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging.")] = 0,
) -> None:
    """grenswacht: where do our applications' packets go, and whose law applies?"""
    set_config(config, verbose)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Result files or folders "
                                                     "(JSON array, JSON Lines, .gz).")],
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
    analyse: Annotated[bool, typer.Option(
        "--analyse/--no-analyse", help="Analyse the windows the results fall into (verdicts, "
        "findings, application verdicts) before returning; with `grenswacht run` up, wait "
        "until it has.")] = True,
) -> None:
    """Ingest RIPE Atlas result files through the bus into storage, then analyse them."""
    cfg = settings()
    try:
        files = expand_paths(paths)
    except InputError as exc:
        fail(str(exc))
    store = open_cli_store(storage)
    stats: dict[str, Any]
    try:
        if isinstance(store, RemoteStore):
            stats = _ingest_remote(store, files, cfg.ingest.read_limits(), analyse=analyse)
        else:
            ingested, windows = _ingest_local(cfg, store, files)
            stats = ingested.as_dict()
            if analyse:
                stats.update(_analyse_local(cfg, store, windows))
    except GrenswachtError as exc:
        fail(str(exc))
    stats["files"] = len(files)
    if fmt is OutputFormat.table:
        table = Table(title="ingested", show_header=False)
        for key in ("files", "results", "traceroute_hops", "dns_answers", "ping_results",
                    "dead_letters", "windows_analysed", "path_verdicts", "home_paths",
                    "application_verdicts", "findings", "windows_failed"):
            if key in stats:
                table.add_row(key.replace("_", " "), f"{stats[key]:,}")
        console.print(table)
        reasons = sorted(stats.get("dead_letter_reasons", {}).items())
        for reason, count in reasons:
            err_console.print(f"[yellow]dead letters[/] {reason}: {count:,}", highlight=False)
        if reasons:
            err_console.print(DEAD_LETTER_HINT, highlight=False)
    else:
        print_rows(console, list(stats), [list(stats.values())], fmt)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=err_console, transient=True,
    )


def _ingest_local(cfg: Settings, store: Storage, files: list[Path]) -> tuple[IngestStats,
                                                                            set[int]]:
    """Ingest into the store this process opened; the analysis windows the results fall
    into."""
    window_s = cfg.analysis.window_s
    windows: set[int] = set()
    bus = open_bus(f"memory://cli-ingest-{uuid.uuid4().hex}")  # a fresh bus per command
    options = {**cfg.ingest.consumer_options(), "group": "cli-ingest"}
    consumer = IngestConsumer(bus, store, **options)
    limits = cfg.ingest.read_limits()
    with _progress() as progress:
        for path in files:
            task = progress.add_task(path.name, total=file_size(path))
            pending = pending_bytes = 0
            for record in read_results(path, limits):
                window = result_window(record.value, window_s)
                if window is not None:
                    windows.add(window)
                bus.publish(topics.RESULTS, record.value, key=record.key, headers=record.headers)
                pending += 1
                pending_bytes += len(record.value)
                if pending >= CHUNK or pending_bytes >= CHUNK_BYTES:  # memory stays bounded
                    consumer.drain(idle_timeout=0)
                    pending = pending_bytes = 0
                    progress.update(task, completed=record.position)
            consumer.drain(idle_timeout=0)
            progress.update(task, completed=file_size(path))
    bus.close()
    return consumer.stats, windows


def _analyse_local(cfg: Settings, store: Storage, touched: set[int]) -> dict[str, Any]:
    """Analyse the touched windows (and any left unanalysed) with a progress bar."""
    from consumers.analysis import analyse_windows, unanalysed_windows
    from grenswacht.embedded import analysis_context

    try:
        context = analysis_context(cfg, store)
        windows = touched | set(unanalysed_windows(store, cfg.analysis.window_s))
    except GrenswachtError as exc:
        fail(f"cannot analyse: {exc}")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("windows"), TimeRemainingColumn(),
                        console=err_console, transient=True)
    with progress:
        task = progress.add_task("analysing", total=len(windows))
        stats = analyse_windows(store, None, context, windows,
                                window_s=cfg.analysis.window_s,
                                progress=lambda done, _total, _s: progress.update(
                                    task, completed=done))
    for window, failure in sorted(stats.failing.items()):
        err_console.print(f"[yellow]window {window} not analysed[/]: {escape(failure.error)}",
                          highlight=False)
    return {"windows_analysed": stats.windows, "path_verdicts": stats.paths,
            "home_paths": stats.home_paths, "application_verdicts": stats.applications,
            "findings": sum(stats.findings.values()), "windows_failed": len(stats.failing)}


def _ingest_remote(store: RemoteStore, files: list[Path], limits: ReadLimits, *,
                   analyse: bool = True) -> dict[str, Any]:
    err_console.print(f"grenswacht run is up at {store.url}: sending the results to it",
                      style="dim")
    before = _dead_letter_count(store)
    handled_before = _handled(store)
    sent = 0
    with _progress() as progress:
        for path in files:
            task = progress.add_task(path.name, total=file_size(path))
            chunk = []
            chunk_bytes = 0
            for record in read_results(path, limits):
                chunk.append((record.value, record.key, record.headers))
                chunk_bytes += len(record.value)
                if len(chunk) >= 1000 or chunk_bytes >= REMOTE_CHUNK_BYTES:
                    sent += store.client.ingest(chunk)
                    chunk = []
                    chunk_bytes = 0
                    progress.update(task, completed=record.position)
            if chunk:
                sent += store.client.ingest(chunk)
            progress.update(task, completed=file_size(path))
    _wait_until_stored(store, handled_before + sent)
    if analyse:
        _wait_until_analysed(store, handled_before + sent)
    return {"results_sent": sent, "dead_letters": _dead_letter_count(store) - before}


def _wait_until_analysed(store: RemoteStore, target: int, timeout: float = 600) -> None:
    """Wait until the running analysis has seen ``target`` messages and analysed every
    window they touched (a failing window is reported, not waited for)."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        analysis = store.client.status().get("components", {}).get("analysis")
        if analysis is None:
            return  # no analysis component in this process
        if (int(analysis.get("received", 0)) >= target
                and int(analysis.get("pending_windows", 0)) <= len(
                    analysis.get("failing_windows", {}))):
            for window, failure in analysis.get("failing_windows", {}).items():
                err_console.print(f"[yellow]window {window} not analysed yet[/]: "
                                  f"{escape(str(failure.get('error', '')))}", highlight=False)
            return
        if time.monotonic() > deadline:
            err_console.print("[yellow]still being analysed[/]: check `grenswacht status`")
            return
        pause.wait(0.2)


def _dead_letter_count(store: Store) -> int:
    return int(store.query("SELECT count() FROM dead_letters FINAL").rows[0][0])


def _handled(store: RemoteStore) -> int:
    """Messages the running ingest component has stored, as results or dead letters."""
    ingest = store.client.status().get("components", {}).get("ingest", {})
    return int(ingest.get("results", 0)) + int(ingest.get("dead_letters", 0))


def _wait_until_stored(store: RemoteStore, target: int, timeout: float = 600) -> None:
    """Wait until the ingest component has stored ``target`` messages in all (works on
    every bus: the memory bus's lag and Kafka's committed offsets both lead here)."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while _handled(store) < target:
        if time.monotonic() > deadline:
            err_console.print("[yellow]still being stored[/]: check `grenswacht status`")
            return
        pause.wait(0.2)


def sql(
    query: Annotated[str, typer.Argument(help="One read-only query (SELECT, WITH, SHOW, "
                                              "DESCRIBE, EXPLAIN, EXISTS).")],
    param: ParamOption = None,
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
    max_rows: Annotated[int, typer.Option(min=1, help="Most rows to print.")] = 10_000,
) -> None:
    """Run one read-only SQL query on the store (through `grenswacht run` if it is up).
    Values go in as bound parameters: grenswacht sql "SELECT … WHERE probe_id = {p:UInt32}"
    --param p=6001."""
    params = parse_params(param)
    store = open_cli_store(storage)
    try:
        result = store.query(query, params, read_only=True, max_rows=max_rows)
    except GrenswachtError as exc:
        fail(str(exc))
    finally:
        store.close()
    print_rows(console, list(result.column_names), result.rows, fmt)
    if result.truncated:
        err_console.print(f"[yellow]only the first {max_rows:,} rows[/] (--max-rows)")


def run(
    storage: StorageOption = None,
    bus: Annotated[str | None, typer.Option(help="memory://NAME or kafka://host:port")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the status/SQL endpoint.")] = None,
    preload: Annotated[list[Path] | None, typer.Option(
        "--ingest", help="Result files to ingest at start (repeatable).")] = None,
) -> None:
    """Run the embedded process: bus, consumers, scheduler/probe when configured, endpoint."""
    from grenswacht.embedded import Embedded

    cfg = settings(**({"storage": storage} if storage else {}), **({"bus": bus} if bus else {}))
    if port is not None:
        cfg.server.port = port
    if running_endpoint(cfg.data_dir):
        fail(f"grenswacht run is already up for {cfg.data_dir}")
    app = Embedded(cfg)
    try:
        app.start()
    except (GrenswachtError, OSError) as exc:
        app.stop()
        fail(f"cannot start: {exc}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    say(console, f"grenswacht run: store {redact(cfg.storage_dsn)}, bus {redact(cfg.bus)}, "
        f"endpoint {app.url}, components {', '.join(app.components)}")
    if app.token is not None:
        made = "generated now, " if app.token.created else ""
        say(console, f"endpoint token: {made}in {app.token.source} (send it as "
            "`Authorization: Bearer <token>`; docs/security.md)")
    if preload:
        files = expand_paths(preload)
        limits = cfg.ingest.read_limits()
        for path in files:
            chunk: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]] = []
            size = 0
            for r in read_results(path, limits):
                chunk.append((r.value, r.key, list(r.headers)))
                size += len(r.value)
                if len(chunk) >= CHUNK or size >= CHUNK_BYTES:
                    app.ingest(chunk)
                    chunk, size = [], 0
            if chunk:
                app.ingest(chunk)
        console.print(f"queued {len(files)} file(s) for ingest")
    _print_current(app)
    console.print(f"web UI: {app.url}/  (open it in a browser; status: {app.url}/status; "
                  "`grenswacht apps`, `grenswacht sql` and the other commands talk to it)",
                  highlight=False)
    console.print("press Ctrl-C to stop")
    stop.wait()
    console.print("stopping…")
    app.stop()


def _print_current(app: Any) -> None:
    """The current verdict of every application, as `grenswacht apps` shows it."""
    from consumers.current import coverage, current_applications
    from grenswacht.commands.apps import print_apps

    try:
        states = current_applications(app.storage)
        print_apps(states, coverage(app.storage, states))
    except GrenswachtError as exc:
        err_console.print(f"[yellow]cannot show the applications yet[/]: {escape(str(exc))}")


def migrate(
    storage: StorageOption = None,
    cluster: Annotated[str | None, typer.Option(
        help="ClickHouse cluster name: create replicated tables and Distributed tables "
             "over them, ON CLUSTER (see docs/data-model.md).")] = None,
    database: Annotated[str | None, typer.Option(help="Database of the cluster tables.")] = None,
) -> None:
    """Apply the ClickHouse DDL (schemas/clickhouse/*.sql) that is not applied yet."""
    cfg = settings()
    if not storage and running_endpoint(cfg.data_dir):
        console.print("grenswacht run is up and migrated the store when it started")
        return
    try:
        store = open_storage(storage or cfg.storage_dsn, migrate=False)
        applied = store.migrate(cluster=cluster, database=database)
    except GrenswachtError as exc:
        fail(str(exc))
    console.print(f"schema up to date ({len(applied)} file(s) applied now)")


def status(fmt: FormatOption = OutputFormat.table) -> None:
    """Show the running embedded process: components, counters, lag (table and CSV: one
    `key, value` row per figure, nested keys joined with dots; JSON: a list holding the
    status document, like `ingest -f json`)."""
    cfg = settings()
    client = local_endpoint(cfg)
    if client is None:
        fail(f"grenswacht run is not up for {cfg.data_dir}", code=1)
    try:
        info = client.status()
    except GrenswachtError as exc:
        fail(str(exc))
    if fmt is OutputFormat.json:
        print_json(console, [info])
    else:
        print_rows(console, ["key", "value"], flatten(info), fmt, title="grenswacht run")


def register(app: typer.Typer) -> None:
    app.callback()(_main)
    app.command()(ingest)
    app.command()(sql)
    app.command()(run)
    app.command()(migrate)
    app.command()(status)
