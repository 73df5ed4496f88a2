"""The all-in-one embedded process (``grenswacht run``): one bus, one store, every component
in a thread, and the HTTP endpoint.

Components are registered like extensions: :data:`COMPONENT_FACTORIES` maps a name to a
factory ``(Embedded) -> Component | None`` (None: not configured, e.g. no Atlas key).
A component runs in its own thread until the shared stop event is set.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

from consumers.alerts import create_component as create_alerts_component
from consumers.ingest import IngestConsumer
from consumers.storage import Storage, open_storage
from grenswacht import __version__
from grenswacht.commands.common import open_configured_bus
from grenswacht.server import Endpoint
from grenswacht.server.auth import ServerToken, server_token
from grenswacht.settings import Settings
from grenswacht.store import acknowledge_alert
from scheduler.jsonstate import JsonState
from schemas import topics
from schemas.bus import Bus
from schemas.errors import BusError, GrenswachtError
from schemas.redact import redact
from schemas.store import QueryResult, Store

log = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None: ...

    def status(self) -> dict[str, Any]: ...


class IngestComponent:
    name = "ingest"

    def __init__(self, app: Embedded) -> None:
        self.consumer = IngestConsumer(app.open_bus(), app.storage,
                                       **app.settings.ingest.consumer_options())

    def run(self, stop: threading.Event) -> None:
        self.consumer.run(stop)

    def status(self) -> dict[str, Any]:
        return self.consumer.stats.as_dict()


def load_applications(settings: Settings, storage: Storage | None) -> dict[str, list[str]]:
    """{application: hostnames} from the inventory (``atlas.inventory``); also written to
    the ``applications`` table (grouping by municipality in SQL and the dashboard)."""
    path = settings.atlas.inventory
    if path is None:
        return {}
    from scheduler.inventory import load_inventory

    inventory = load_inventory(path)
    apps = inventory.applications
    if storage is not None and apps:
        storage.insert("applications", {
            "application": [a.name for a in apps],
            "municipalities": [list(a.municipalities) for a in apps],
            "hostnames": [[str(h) for h in a.hostnames] for a in apps],
            "criticality": [str(a.criticality.value) for a in apps],
            "tags": [list(a.tags) for a in apps],
        })
    return {a.name: [str(h) for h in a.hostnames] for a in apps}


def analysis_context(settings: Settings, storage: Storage | None) -> Any:
    """The :class:`consumers.pipeline.AnalysisContext` of these settings (opens the
    enricher; loads the inventory into the ``applications`` table)."""
    from consumers.enrich import open_enricher
    from consumers.pipeline import AnalysisContext

    enricher, registry = open_enricher(settings.jurisdiction)
    claims = settings.analysis.claims_in_clickhouse
    if claims is None:
        claims = storage is not None and storage.is_embedded
    return AnalysisContext(enricher, registry, load_applications(settings, storage),
                           settings.verdicts, claims_in_clickhouse=claims)


class AnalysisComponent:
    """Enrichment + findings + verdicts as results arrive (consumers/analysis)."""

    name = "analysis"

    def __init__(self, app: Embedded) -> None:
        from consumers.analysis import AnalysisLoop

        cfg = app.settings.analysis
        self.loop = AnalysisLoop(
            app.storage, app.open_bus(), analysis_context(app.settings, app.storage),
            group=cfg.group, window_s=cfg.window_s,
            settle_s=max(cfg.settle_s, 2 * app.settings.ingest.flush_interval_s),
            max_delay_s=cfg.max_delay_s, retry_initial_s=cfg.retry_initial_s,
            retry_max_s=cfg.retry_max_s,
        )

    def run(self, stop: threading.Event) -> None:
        self.loop.run(stop)

    def status(self) -> dict[str, Any]:
        return self.loop.status()


class SchedulerComponent:
    """The scheduler (scheduler/): with a RIPE Atlas key, reconcile measurements, stream
    results, backfill gaps; always, when configured, self-hosted probe tasks and probe
    metadata."""

    name = "scheduler"

    def __init__(self, app: Embedded) -> None:
        self.app = app
        self.handle: Any = None

    @classmethod
    def create(cls, app: Embedded) -> SchedulerComponent | None:
        from scheduler.app import wanted

        return cls(app) if wanted(app.settings.atlas) else None

    def run(self, stop: threading.Event) -> None:
        from scheduler.app import start_scheduler

        self.handle = start_scheduler(self.app.settings.atlas, self.app.open_bus(),
                                      self.app.settings.data_dir,
                                      inbox_bus=self.app.open_bus())
        stop.wait()
        self.handle.shutdown()

    def status(self) -> dict[str, Any]:
        if self.handle is None:
            return {"state": "starting"}
        return {"state": "running", **self.handle.status()}


class VantagePointsComponent:
    """RIPE Atlas probe metadata (the scheduler fetches it) -> ``vantage_points``."""

    name = "vantage-points"

    def __init__(self, app: Embedded) -> None:
        from consumers.vantage_points import VantagePointConsumer

        self.consumer = VantagePointConsumer(app.open_bus(), app.storage)

    def run(self, stop: threading.Event) -> None:
        self.consumer.run(stop)

    def status(self) -> dict[str, Any]:
        return self.consumer.stats.as_dict()


class ProbeComponent:
    """The local self-hosted probe agent (probes/), when ``probe.enabled``."""

    name = "probe"

    def __init__(self, app: Embedded) -> None:
        from probes.agent import Agent

        self.agent = Agent(app.settings.probe, app.open_bus())

    @classmethod
    def create(cls, app: Embedded) -> ProbeComponent | None:
        return cls(app) if app.settings.probe.enabled else None

    def run(self, stop: threading.Event) -> None:
        self.agent.start()
        try:
            self.agent.run_forever(stop)
        finally:
            self.agent.close()

    def status(self) -> dict[str, Any]:
        return dict(self.agent.health())


def _alerts_component(app: Embedded) -> Component | None:
    """consumers.alerts when a delivery channel is configured (docs/alerts.md)."""
    if not app.settings.alerts.channels:
        return None
    return create_alerts_component(app.settings.alerts, app.storage, app.open_bus())


ComponentFactory = Callable[["Embedded"], Component | None]
COMPONENT_FACTORIES: dict[str, ComponentFactory] = {
    "ingest": IngestComponent,
    "analysis": AnalysisComponent,
    "scheduler": SchedulerComponent.create,
    "vantage-points": VantagePointsComponent,
    "probe": ProbeComponent.create,
    "alerts": _alerts_component,
}


class Embedded:
    """Owns the store, the bus, the components and the endpoint of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._storage: Storage | None = None
        self.components: dict[str, Component] = {}
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._producer: Bus | None = None
        self._buses: list[Bus] = []
        self._endpoint: Endpoint | None = None
        self._started = 0.0
        self.url = ""
        self.token: ServerToken | None = None
        self.errors: dict[str, str] = {}

    # -- wiring ---------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise GrenswachtError("the store is not open yet (start() opens it)")
        return self._storage

    def open_bus(self) -> Bus:
        bus = open_configured_bus(self.settings)
        self._buses.append(bus)
        return bus

    @property
    def store(self) -> Store:
        """The store this process holds (what the endpoint's pages read)."""
        return self.storage

    @property
    def state_file(self) -> Path:
        return self.settings.data_dir / "run.json"

    def start(self, *, with_endpoint: bool = True, only: set[str] | None = None) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        if with_endpoint:  # refuse a non-loopback bind without a token before opening anything
            self.token = server_token(self.settings)
        self._storage = open_storage(self.settings.storage_dsn)
        self._producer = self.open_bus()
        for name, factory in COMPONENT_FACTORIES.items():
            if only is not None and name not in only:
                continue
            component = factory(self)
            if component is not None:
                self.components[name] = component
        for name, component in self.components.items():
            thread = threading.Thread(
                target=self._guard, args=(name, component), name=name, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._started = time.time()
        if with_endpoint and self.token is not None:
            self._endpoint = Endpoint(self, self.settings.server, self.token)
            self.url = self._endpoint.start()
            # written atomically: a CLI reading it meanwhile sees no file or all of it
            state = JsonState(self.state_file)
            state.data = {
                "pid": os.getpid(), "url": self.url, "storage": redact(self.settings.storage_dsn),
                "bus": redact(self.settings.bus), "started": self._started,
                "token_source": self.token.source,
            }
            state.save()

    def _guard(self, name: str, component: Component) -> None:
        """Run a component; a crash is logged and reported in /status, and the component
        is restarted after a pause (the rest of the process keeps going)."""
        while not self.stop_event.is_set():
            try:
                component.run(self.stop_event)
                return
            except Exception as exc:  # noqa: BLE001 - keep the process alive, report it
                log.exception("component %s failed; restarting in 5 s", name)
                self.errors[name] = f"{type(exc).__name__}: {exc}"
                self.stop_event.wait(5.0)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._endpoint is not None:
            self._endpoint.stop()
        for bus in self._buses:
            try:
                bus.close()
            except BusError:
                log.warning("closing a bus failed", exc_info=True)
        if self.state_file.exists():
            try:
                if orjson.loads(self.state_file.read_bytes()).get("pid") == os.getpid():
                    self.state_file.unlink()
            except (OSError, orjson.JSONDecodeError):
                pass

    # -- what the endpoint serves -------------------------------------------------------
    def status(self) -> dict[str, Any]:
        lag = None
        broker = getattr(self._producer, "broker", None)
        if broker is not None:
            lag = broker.lag(self.settings.ingest.group, topics.RESULTS)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "storage": redact(self.settings.storage_dsn),
            "bus": redact(self.settings.bus),
            "uptime_s": round(time.time() - self._started, 1),
            "components": {name: c.status() for name, c in self.components.items()},
            "errors": dict(self.errors),
            "results_lag": lag,
        }

    def metrics(self) -> tuple[bytes, str]:
        from grenswacht.health import metrics_payload

        self.status()  # refreshes the lag gauge
        return metrics_payload()

    def sql(self, sql: str, max_rows: int = 0,
            params: Mapping[str, Any] | None = None) -> QueryResult:
        """Untrusted SQL (``POST /sql``): one read-only statement, at most ``server.max_rows``
        rows, bound parameters."""
        limit = min(max_rows or self.settings.server.max_rows, self.settings.server.max_rows)
        return self.storage.query(sql, params or None, read_only=True, max_rows=limit)

    def ack_alert(self, alert_id: str, by: str, comment: str) -> dict[str, str]:
        """Acknowledge an alert (its id, or a unique prefix of at least 8
        characters) in the store this process
        holds; ``grenswacht alerts ack`` calls this through the endpoint."""
        return acknowledge_alert(self.storage, alert_id, by, comment)

    def ingest(self, records: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]]) -> int:
        if self._producer is None:
            raise GrenswachtError("the bus is not open yet (start() opens it)")
        for value, key, headers in records:
            self._producer.publish(topics.RESULTS, value, key=key, headers=headers)
        self._producer.flush()
        return len(records)
