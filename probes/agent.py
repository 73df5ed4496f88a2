"""The probe agent: tasks in (bus or local schedule), RIPE Atlas-format results out.

Tasks come from :data:`schemas.topics.PROBE_TASKS` (consumer group
``<settings.group>-<vantage point>``, so every vantage point sees every task and keeps
those addressed to it or to ``*``) and from the local schedule in the settings. A polled
batch runs on a bounded thread pool (``concurrency``); each task first waits for the
per-target rate limit; every probe packet passes the agent-wide probes-per-second cap.
A task's options are held to the agent's settings (:func:`probes.settings.task_options`):
asking for more packets, hops, flows, bytes, time or confidence than the settings allow
gets the settings' value (counted as ``tasks_clamped``); unknown or nonsensical options
make the task malformed (``tasks_malformed``), never a crash.
Results go to :data:`schemas.topics.RESULTS` keyed by :func:`schemas.topics.result_key`
with header ``gw-source: probe``. Offsets are committed only after the batch's results are
flushed (at least once). A task that fails or is refused is counted in :meth:`health` and
the agent continues.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from probes.context import RunContext
from probes.metrics import PROBES_RUN
from probes.runners import RUNNERS, Runner
from probes.safety import TargetRateLimiter
from probes.settings import ProbeSettings, task_options
from schemas.bus import Bus, next_offsets
from schemas.errors import GrenswachtError, InvalidTaskOptions, TargetNotAllowed
from schemas.tasks import ProbeTask
from schemas.topics import (
    HEADER_ORIGIN,
    HEADER_SOURCE,
    PROBE_TASKS,
    RESULTS,
    encode_json,
    result_key,
)


@dataclass
class Health:
    vantage_point: str
    probe_id: int
    started_at: float = field(default_factory=time.time)
    tasks_received: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    tasks_refused: int = 0
    tasks_malformed: int = 0
    tasks_clamped: int = 0
    tasks_for_others: int = 0
    tasks_expired: int = 0
    results_published: int = 0
    last_task_at: float | None = None
    last_error: str = ""


class Agent:
    """One vantage point's agent. Constructing it does no I/O; :meth:`start` subscribes."""

    def __init__(
        self,
        settings: ProbeSettings,
        bus: Bus,
        *,
        context: RunContext | None = None,
        runners: Mapping[str, Runner] = RUNNERS,
        consume_tasks: bool = True,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.context = context or RunContext.from_settings(settings)
        self.runners = runners
        self.consume_tasks = consume_tasks
        self.limiter = TargetRateLimiter(settings.target_interval_s)
        self._health = Health(settings.name, self.context.probe_id)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._next_run = [0.0 for _ in settings.schedule]

    @property
    def group(self) -> str:
        return f"{self.settings.group}-{self.settings.name}"

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="gw-probe"
        )
        if self.consume_tasks:
            self.bus.subscribe([PROBE_TASKS], self.group)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self._health, name, getattr(self._health, name) + value)

    def run_task(self, task: ProbeTask) -> list[dict[str, Any]]:
        """Run one task now (options, rate limit, runner); failures are counted, not raised."""
        try:
            options = task_options(task, self.settings)
        except InvalidTaskOptions as exc:
            self._record_error(f"{task.task_id}: {exc}", tasks_malformed=1)
            PROBES_RUN.labels(task.kind, self.settings.name, "malformed").inc()
            return []
        if options.clamped:
            self._count(tasks_clamped=1)
        self.limiter.wait(task.target)
        with self._lock:
            self._health.last_task_at = time.time()
        try:
            results = self.runners[task.kind](task, self.context)
        except TargetNotAllowed as exc:
            self._record_error(f"{task.task_id}: {exc}", tasks_refused=1)
            PROBES_RUN.labels(task.kind, self.settings.name, "refused").inc()
            return []
        except (GrenswachtError, OSError) as exc:
            self._record_error(f"{task.task_id}: {exc}", tasks_failed=1)
            PROBES_RUN.labels(task.kind, self.settings.name, "failed").inc()
            return []
        except Exception as exc:  # a runner bug must not stop the agent: count it, go on
            self._record_error(f"{task.task_id}: {type(exc).__name__}: {exc}", tasks_failed=1)
            PROBES_RUN.labels(task.kind, self.settings.name, "failed").inc()
            return []
        self._count(tasks_done=1)
        PROBES_RUN.labels(task.kind, self.settings.name, "done").inc()
        return results

    def _record_error(self, message: str, **increments: int) -> None:
        self._count(**increments)
        with self._lock:
            self._health.last_error = message

    def run_tasks(self, tasks: list[ProbeTask]) -> int:
        """Run ``tasks`` on the pool, publish and flush their results; return the count."""
        if self._executor is None:
            self.start()
        executor = self._executor
        if executor is None:  # pragma: no cover - start() always sets it
            raise RuntimeError("agent executor did not start")
        published = 0
        for results in executor.map(self.run_task, tasks):
            for result in results:
                self.bus.publish(
                    RESULTS,
                    encode_json(result),
                    key=result_key(result),
                    headers=[
                        (HEADER_SOURCE, b"probe"),
                        (HEADER_ORIGIN, self.settings.name.encode()),
                    ],
                )
                published += 1
        self.bus.flush()
        self._count(results_published=published)
        return published

    def poll_once(self, timeout: float = 1.0) -> int:
        """Poll one batch of tasks, run those for this vantage point, publish, commit."""
        messages = self.bus.poll(max_records=self.settings.concurrency * 4, timeout=timeout)
        if not messages:
            return 0
        tasks: list[ProbeTask] = []
        for message in messages:
            self._count(tasks_received=1)
            try:
                task = ProbeTask.from_bytes(message.value)
            except ValidationError as exc:
                self._record_error(f"malformed task at offset {message.offset}: {exc}",
                                   tasks_malformed=1)
                continue
            if not task.for_vantage_point(self.settings.name):
                self._count(tasks_for_others=1)
            elif task.expired(time.time()):
                self._count(tasks_expired=1)
            else:
                tasks.append(task)
        published = self.run_tasks(tasks)
        self.bus.commit(next_offsets(messages))
        return published

    def run_due(self, now: float | None = None) -> int:
        """Run the local schedule's tasks that are due; return results published."""
        now = time.monotonic() if now is None else now
        due = []
        for index, scheduled in enumerate(self.settings.schedule):
            if now >= self._next_run[index]:
                due.append(scheduled.task)
                self._next_run[index] = now + scheduled.interval_s
        return self.run_tasks(due) if due else 0

    def run_forever(self, stop: threading.Event, poll_timeout: float = 0.5) -> None:
        if self._executor is None:
            self.start()
        while not stop.is_set():
            self.run_due()
            if self.consume_tasks:
                self.poll_once(poll_timeout)
            else:
                stop.wait(poll_timeout)

    def health(self) -> dict[str, Any]:
        with self._lock:
            report = asdict(self._health)
        report["uptime_s"] = round(time.time() - report["started_at"], 1)
        report["runners"] = sorted(self.runners)
        return report

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
