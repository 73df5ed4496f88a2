"""APScheduler wiring (the only module that imports APScheduler).

:func:`start_scheduler` starts, in background threads:

* the **collector** (stream + REST backfill) in a thread of its own;
* job ``reconcile`` every ``atlas.reconcile_interval_s`` (first run now): inventory ->
  plan -> stop/create -> collector subscriptions;
* job ``backfill`` every 15 minutes: a REST sweep over the overlap window (safety net);
* job ``probe-tasks`` every ``atlas.self_hosted.tick_s`` (first run now): the self-hosted
  vantage sets' tasks that are due -> the probe-tasks topic (no key needed);
* job ``probe-metadata`` every ``atlas.probe_metadata.interval_s``: RIPE Atlas probes that
  results named -> probe API -> the vantage-points topic (no key needed);
* job ``confirm`` every ``atlas.confirm.interval_s``: queued confirmation requests -> one-off
  pings (within ``atlas.confirm.daily_credits``) -> the collector;
* the **inbox** thread (given a second bus, ``inbox_bus``): the scheduler's own consumer
  group on the results topic (probe ids) and the confirmation requests topic.

The Atlas part (collector, ``reconcile``, ``backfill``, ``confirm``) runs only with an API
key.

Jobs use ``coalesce=True`` (a backlog of missed runs runs once), ``max_instances=1`` (no
overlapping runs), ``misfire_grace_time`` of half an interval and a jitter, so many
deployments do not hit RIPE Atlas in the same second. A failing job logs and waits for
its next run; the scheduler keeps going.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from scheduler import jobs
from scheduler.atlas import AtlasClient, open_atlas
from scheduler.collector import Collector, StateFile
from scheduler.confirm import Confirmer
from scheduler.inbox import Handler, Inbox
from scheduler.inventory import SelfHostedVantageSet, load_inventory
from scheduler.jsonstate import JsonState
from scheduler.probe_metadata import ProbeMetadataFetcher
from scheduler.settings import AtlasSettings
from schemas.bus import Bus
from schemas.errors import GrenswachtError
from schemas.topics import CONFIRM_REQUESTS, RESULTS

LOG = logging.getLogger(__name__)
BACKFILL_INTERVAL_S = 900


@dataclass
class SchedulerHandle:
    scheduler: BackgroundScheduler
    collector: Collector
    client: AtlasClient
    state: StateFile
    _stop: threading.Event
    _thread: threading.Thread
    probe_tasks: JsonState | None = None
    metadata: ProbeMetadataFetcher | None = None
    confirmer: Confirmer | None = None
    inbox: Inbox | None = None
    _inbox_thread: threading.Thread | None = None

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the jobs and the collector; flush and save the checkpoints."""
        self.scheduler.shutdown(wait=False)
        self._stop.set()
        for thread in (self._thread, self._inbox_thread):
            if thread is not None and thread.is_alive():
                thread.join(timeout)
        self.collector.commit()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"jobs": sorted(j.id for j in self.scheduler.get_jobs()),
                               "measurements": len(self.state.measurements),
                               "results_published": self.collector.published}
        if self.metadata is not None:
            out["probe_metadata"] = self.metadata.status()
        if self.confirmer is not None:
            out["confirm"] = self.confirmer.status()
        if self.inbox is not None:
            out["inbox"] = {"messages": self.inbox.messages, "failures": self.inbox.failures,
                            "last_error": self.inbox.last_error}
        return out

    def alive(self) -> bool:
        """The collector thread runs (or, without a key, the jobs do)."""
        return self._thread.is_alive() or bool(self.scheduler.running)


def has_self_hosted(settings: AtlasSettings) -> bool:
    """The inventory names at least one self-hosted vantage set (False without one)."""
    if not settings.self_hosted.enabled or settings.inventory is None:
        return False
    inventory = load_inventory(settings.inventory)
    return any(isinstance(v, SelfHostedVantageSet) for v in inventory.vantage_sets)


def wanted(settings: AtlasSettings) -> bool:
    """Whether ``start_scheduler`` has anything to do with these settings."""
    return settings.has_key or settings.probe_metadata.enabled or has_self_hosted(settings)


def _guarded(name: str, job: object, *args: object) -> None:
    try:
        job(*args)  # type: ignore[operator]
    except GrenswachtError as exc:
        LOG.error("job %s failed: %s", name, exc)


def _every(
    scheduler: BackgroundScheduler, name: str, seconds: int, job: object, *args: object,
    first: datetime | None = None,
) -> None:
    # (APScheduler: an explicit next_run_time=None would add the job paused)
    timing: dict[str, Any] = {"next_run_time": first} if first is not None else {}
    scheduler.add_job(
        _guarded,
        "interval",
        args=(name, job, *args),
        id=name,
        seconds=seconds,
        misfire_grace_time=max(1, seconds // 2),
        **timing,
    )


def start_scheduler(
    settings: AtlasSettings,
    bus: Bus,
    data_dir: Path,
    *,
    reconcile: bool = True,
    inbox_bus: Bus | None = None,
) -> SchedulerHandle:
    """Start collecting (and, with ``reconcile``, managing) RIPE Atlas measurements when a
    key is configured, and publishing self-hosted probe tasks. Results go to ``bus``
    (``schemas.topics.RESULTS``), tasks to ``schemas.topics.PROBE_TASKS``; state lives in
    ``data_dir``."""
    client = open_atlas(settings)
    state = StateFile(settings.state_file or data_dir / "atlas-state.json").load()
    collector = Collector(
        client,
        bus,
        state,
        overlap_s=settings.backfill_overlap_s,
        reconnect_max_s=settings.stream_reconnect_max_s,
    )
    stop = threading.Event()
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=UTC,
    )
    atlas = settings.has_key
    confirmer: Confirmer | None = None
    if atlas and settings.confirm.daily_credits > 0 and inbox_bus is not None:
        confirmer = Confirmer(
            client, settings, JsonState(data_dir / "atlas-confirm.json").load(),
            on_created=collector.add_measurement, dead_letters=bus,
        )
        collector.set_measurements(set(state.measurements) | confirmer.active_ids())
    if reconcile and atlas:
        scheduler.add_job(
            _guarded,
            "interval",
            args=("reconcile", jobs.reconcile, settings, client, state, collector,
                  confirmer.active_ids if confirmer is not None else None),
            id="reconcile",
            seconds=settings.reconcile_interval_s,
            jitter=min(60, settings.reconcile_interval_s // 10),
            misfire_grace_time=settings.reconcile_interval_s // 2,
            next_run_time=datetime.now(UTC),
        )
    if atlas:
        scheduler.add_job(
            _guarded,
            "interval",
            args=("backfill", jobs.backfill, collector),
            id="backfill",
            seconds=BACKFILL_INTERVAL_S,
            jitter=60,
            misfire_grace_time=BACKFILL_INTERVAL_S // 2,
        )
    task_state = None
    if has_self_hosted(settings):
        task_state = JsonState(data_dir / "probe-tasks-state.json").load()
        _every(scheduler, "probe-tasks", settings.self_hosted.tick_s, jobs.publish_probe_tasks,
               settings, bus, task_state, first=datetime.now(UTC))
    handlers: dict[str, Handler] = {}
    metadata = None
    if settings.probe_metadata.enabled and inbox_bus is not None:
        metadata = ProbeMetadataFetcher(
            client, bus, JsonState(data_dir / "atlas-probes.json").load(),
            settings.probe_metadata,
        )
        handlers[RESULTS] = metadata.observe
        _every(scheduler, "probe-metadata", settings.probe_metadata.interval_s, metadata.fetch,
               first=datetime.now(UTC) + timedelta(seconds=5))
    if confirmer is not None:
        handlers[CONFIRM_REQUESTS] = confirmer.enqueue
        _every(scheduler, "confirm", settings.confirm.interval_s, confirmer.run)
    thread = threading.Thread(
        target=collector.run, args=(stop,), name="atlas-collector", daemon=True
    )
    inbox = inbox_thread = None
    if handlers and inbox_bus is not None:
        inbox = Inbox(inbox_bus, settings.probe_metadata.group, handlers)
        inbox_thread = threading.Thread(target=inbox.run, args=(stop,), name="scheduler-inbox",
                                        daemon=True)
    scheduler.start()
    if atlas:
        thread.start()
    if inbox_thread is not None:
        inbox_thread.start()
    return SchedulerHandle(scheduler, collector, client, state, stop, thread, task_state,
                           metadata, confirmer, inbox, inbox_thread)
