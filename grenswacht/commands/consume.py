"""``grenswacht consume COMPONENT``: one downstream component as its own process.

This is how the Helm chart runs the consumers: ``grenswacht consume ingest --bus
kafka://broker:9092 --storage http://clickhouse:8123``. The process joins the component's
consumer group, commits only after ClickHouse acknowledged a batch, and on SIGTERM/SIGINT
flushes, commits and leaves the group. ``--exit-when-idle`` makes it a batch job that
returns once the topic is drained.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated

import typer

from grenswacht.commands.common import StorageOption, console, fail, settings
from grenswacht.health import serve
from grenswacht.render import print_json, say
from schemas.errors import GrenswachtError
from schemas.redact import redact

consume_app = typer.Typer(help="Run one consumer component as its own process.",
                          no_args_is_help=True)


@consume_app.command("ingest")
def ingest(
    bus: Annotated[
        str | None, typer.Option(help="kafka://host:port[,host:port] (default: settings.bus)")
    ] = None,
    storage: StorageOption = None,
    group: Annotated[str | None, typer.Option(help="Consumer group (default: settings)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Results per ClickHouse insert.")] = None,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(help="After the first message, stop once this many seconds pass "
                 "without one and no partition it holds has messages left (a batch job "
                 "that drains the topic)."),
    ] = None,
) -> None:
    """Consume the results topic into ClickHouse (normalise, insert, then commit)."""
    from consumers.ingest import IngestConsumer
    from consumers.storage import open_storage
    from schemas.bus import open_bus

    overrides = {k: v for k, v in (("bus", bus), ("storage", storage)) if v}
    cfg = settings(**overrides)
    options = {"settings": cfg.kafka} if cfg.bus.startswith("kafka:") else {}
    try:
        store = open_storage(cfg.storage_dsn)
        transport = open_bus(cfg.bus, **options)
    except GrenswachtError as exc:
        fail(f"cannot start the ingest consumer: {exc}")
    chosen = cfg.ingest.consumer_options()
    chosen.update({k: v for k, v in (("group", group), ("batch_size", batch_size)) if v})
    consumer = IngestConsumer(transport, store, **chosen)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if exit_when_idle is None:
        serve(cfg.metrics, lambda: not stop.is_set())
    say(console, f"consume ingest: bus {redact(cfg.bus)}, store {redact(cfg.storage_dsn)}, "
        f"group {consumer.group}")
    try:
        if exit_when_idle is None:
            consumer.run(stop)
        else:
            # the idle clock starts with the first message: joining the group may wait
            # for a dead member's session to time out
            # (and a fetch stalled on a loaded machine is not the end: the lag must be 0)
            idle_since: float | None = None
            while not stop.is_set() and (
                idle_since is None or time.monotonic() - idle_since < exit_when_idle
                or any(transport.lag().values())
            ):
                if consumer.poll_once(timeout=0.5):
                    idle_since = time.monotonic()
            consumer.flush_and_commit(retry=not stop.is_set())
    except GrenswachtError as exc:
        fail(f"the ingest consumer stopped: {exc}", code=1)
    finally:
        try:
            transport.close()
        except GrenswachtError as exc:
            say(console, f"closing the bus: {redact(str(exc))}")
    stats = consumer.stats.as_dict()
    print_json(console, stats)


BusOption = Annotated[
    str | None, typer.Option(help="kafka://host:port[,host:port] (default: settings.bus)")
]


def _run_component(name: str, bus: str | None, storage: str | None) -> None:
    """Run one component of the embedded registry (grenswacht/embedded.py) alone."""
    from grenswacht.embedded import Embedded

    overrides = {k: v for k, v in (("bus", bus), ("storage", storage)) if v}
    cfg = settings(**overrides)
    app = Embedded(cfg)
    try:
        app.start(with_endpoint=False, only={name})
    except GrenswachtError as exc:
        fail(f"cannot start {name}: {exc}")
    if name not in app.components:
        app.stop()
        fail(f"{name} is not configured (see docs/settings.md)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    serve(cfg.metrics, lambda: name not in app.errors)
    say(console, f"consume {name}: bus {redact(cfg.bus)}, store {redact(app.storage.dsn)}")
    stop.wait()
    status = app.components[name].status()
    app.stop()
    print_json(console, status)


@consume_app.command("enrich")
def enrich(bus: BusOption = None, storage: StorageOption = None) -> None:
    """Keep verdicts and findings current: enrichment (geo, ASN, operator, RTT physics),
    hop/path/application verdicts and the path-graph detectors, per time window."""
    _run_component("analysis", bus, storage)


@consume_app.command("vantage-points")
def vantage_points(bus: BusOption = None, storage: StorageOption = None) -> None:
    """Store the RIPE Atlas probe metadata the scheduler fetches (coordinates, country,
    fetch date) in vantage_points, for the analysis to place the probes."""
    _run_component("vantage-points", bus, storage)


@consume_app.command("alerts")
def alerts(bus: BusOption = None, storage: StorageOption = None) -> None:
    """Detect confirmed jurisdiction changes and deliver alerts (webhook, apprise,
    Alertmanager); needs at least one channel in [alerts]."""
    _run_component("alerts", bus, storage)


def register(app: typer.Typer) -> None:
    app.add_typer(consume_app, name="consume")
