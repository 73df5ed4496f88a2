"""APScheduler wiring (the only module that imports APScheduler).

:func:`start_scheduler` starts, in background threads:

* the **collector** (stream + REST backfill) in a thread of its own;
* job ``reconcile`` every ``atlas.reconcile_interval_s`` (first run now): inventory ->
  plan -> stop/create -> collector subscriptions;
* job ``backfill`` every 15 minutes: a REST sweep over the overlap window (safety net).

Jobs use ``coalesce=True`` (a backlog of missed runs runs once), ``max_instances=1`` (no
overlapping runs), ``misfire_grace_time`` of half an interval and a jitter, so many
deployments do not hit RIPE Atlas in the same second. A failing job logs and waits for
its next run; the scheduler keeps going.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from scheduler import jobs
from scheduler.atlas import AtlasClient, open_atlas
from scheduler.collector import Collector, StateFile
from scheduler.settings import AtlasSettings
from schemas.bus import Bus
from schemas.errors import GrenswachtError

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

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the jobs and the collector; flush and save the checkpoints."""
        self.scheduler.shutdown(wait=False)
        self._stop.set()
        self._thread.join(timeout)
        self.collector.commit()


def _guarded(name: str, job: object, *args: object) -> None:
    try:
        job(*args)  # type: ignore[operator]
    except GrenswachtError as exc:
        LOG.error("job %s failed: %s", name, exc)


def start_scheduler(
    settings: AtlasSettings, bus: Bus, data_dir: Path, *, reconcile: bool = True
) -> SchedulerHandle:
    """Start collecting (and, with ``reconcile``, managing) RIPE Atlas measurements.
    Results go to ``bus`` (``schemas.topics.RESULTS``); state lives in ``data_dir``."""
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
    if reconcile:
        scheduler.add_job(
            _guarded,
            "interval",
            args=("reconcile", jobs.reconcile, settings, client, state, collector),
            id="reconcile",
            seconds=settings.reconcile_interval_s,
            jitter=min(60, settings.reconcile_interval_s // 10),
            misfire_grace_time=settings.reconcile_interval_s // 2,
            next_run_time=datetime.now(UTC),
        )
    scheduler.add_job(
        _guarded,
        "interval",
        args=("backfill", jobs.backfill, collector),
        id="backfill",
        seconds=BACKFILL_INTERVAL_S,
        jitter=60,
        misfire_grace_time=BACKFILL_INTERVAL_S // 2,
    )
    thread = threading.Thread(
        target=collector.run, args=(stop,), name="atlas-collector", daemon=True
    )
    scheduler.start()
    thread.start()
    return SchedulerHandle(scheduler, collector, client, state, stop, thread)
