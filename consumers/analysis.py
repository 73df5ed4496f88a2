"""The enrichment/graph consumer: keeps verdicts (and findings) current as results arrive.

It reads the results topic in a consumer group of its own, notes which time windows the
new results fall into, and once a window has been quiet for ``settle_s`` (so the ingest
consumer has stored its rows) recomputes it from ClickHouse: hop, path and application
verdicts (:func:`consumers.enrich.window.enrich_window`), then every registered window
step (the path-graph detectors register theirs in :data:`WINDOW_STEPS`). Recomputing is
idempotent (ReplacingMergeTree on ``computed_at``), so a window may be done twice; offsets
are committed only after the windows their messages touched were recomputed.

A window whose recomputation fails (any error) is recorded with its error
(``status()["failing_windows"]``), skipped, and tried again after a backoff (the one retry
policy, :mod:`schemas.retry`); after :data:`MAX_WINDOW_ATTEMPTS` failures it is given up
(it stays listed, and the next start's catch-up queues it again). The loop never spins on
one window. Timestamps outside what the tables hold (:mod:`schemas.column_limits`) name no
window: ingest dead-letters those results.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from consumers.enrich import Enricher, VantageRegistry
from consumers.enrich.window import enrich_window
from consumers.graph import anycast_addresses, run_window
from consumers.metrics import FINDINGS
from consumers.storage import Storage
from consumers.vantage_points import refresh_registry
from schemas import topics
from schemas.bus import Bus, Message, TopicPartition
from schemas.errors import GrenswachtError
from schemas.normalize import MAX_TIMESTAMP, MIN_TIMESTAMP
from schemas.retry import RetryPolicy

log = logging.getLogger(__name__)

WindowStep = Callable[
    [Storage, Bus, dt.datetime, dt.datetime, Mapping[str, Sequence[str]]], dict[str, Any]
]
"""``(storage, bus, start, end, applications) -> summary``, run after the verdicts. A step
may name anycast destinations under :data:`ANYCAST_KEY`; the window's verdicts are then
recomputed so those paths get the anycast class."""
ANYCAST_KEY = "anycast_addresses"
MAX_WINDOW_ATTEMPTS = 6
WINDOW_RETRY = RetryPolicy(initial_s=10.0, max_s=600.0)


def graph_step(
    storage: Storage, bus: Bus, start: dt.datetime, end: dt.datetime,
    applications: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """The path graph over the window: load balancers, anycast, US transit -> findings."""
    findings = run_window(storage, bus, start, end, applications)
    kinds: dict[str, int] = {}
    for finding in findings:
        kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
        FINDINGS.labels(finding.kind).inc()
    return {"findings": len(findings), "kinds": kinds,
            ANYCAST_KEY: sorted(anycast_addresses(findings))}


WINDOW_STEPS: dict[str, WindowStep] = {"graph": graph_step}


@dataclass
class AnalysisStats:
    windows: int = 0
    paths: int = 0
    corrections: int = 0
    failures: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_error: str = ""
    failing: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Window start -> error, attempts, next_attempt_at (monotonic) or gave_up."""

    def failing_windows(self, now: float | None = None) -> list[dict[str, Any]]:
        clock = time.monotonic() if now is None else now
        out = []
        for start, failure in sorted(self.failing.items()):
            entry = {"window_start": dt.datetime.fromtimestamp(start, dt.UTC).isoformat(),
                     "error": failure["error"], "attempts": failure["attempts"],
                     "gave_up": failure["gave_up"]}
            if not failure["gave_up"]:
                entry["retry_in_s"] = round(max(failure["next_at"] - clock, 0.0), 1)
            out.append(entry)
        return out


def _timestamp(message: Message) -> int | None:
    try:
        value = orjson.loads(message.value)
    except orjson.JSONDecodeError:
        return None
    stamp = value.get("timestamp") if isinstance(value, dict) else None
    if type(stamp) is not int or not MIN_TIMESTAMP <= stamp <= MAX_TIMESTAMP:
        return None  # not a result ingest stores (it dead-letters it): no window to redo
    return stamp


class AnalysisLoop:
    def __init__(
        self,
        storage: Storage,
        bus: Bus,
        enricher: Enricher,
        registry: VantageRegistry,
        applications: Mapping[str, Sequence[str]] | None = None,
        *,
        group: str = "grenswacht-analysis",
        window_s: int = 3600,
        settle_s: float = 5.0,
    ) -> None:
        self.storage = storage
        self.bus = bus
        self.enricher = enricher
        self.registry = registry
        self.applications = dict(applications or {})
        self.group = group
        self.window_s = window_s
        self.settle_s = settle_s
        self.stats = AnalysisStats()
        self._pending: dict[int, float] = {}  # window start -> last time a message touched it
        # window -> partition -> [first offset, next offset] of its messages
        self._spans: dict[int, dict[TopicPartition, list[int]]] = {}
        self._done: dict[TopicPartition, int] = {}
        self._subscribed = False

    def window_of(self, timestamp: int) -> int:
        return timestamp - timestamp % self.window_s

    def recompute(self, start: int) -> None:
        """Verdicts, then every registered step, for the window starting at ``start``."""
        begin = dt.datetime.fromtimestamp(start, dt.UTC)
        end = begin + dt.timedelta(seconds=self.window_s)
        refresh_registry(self.registry, self.storage)  # probe positions fetched meanwhile
        summary = enrich_window(self.storage, begin, end, self.enricher, self.registry,
                                self.applications)
        self.stats.windows += 1
        self.stats.paths += summary.paths
        self.stats.corrections += summary.corrections
        for verdict, count in summary.classes.items():
            self.stats.classes[verdict] = self.stats.classes.get(verdict, 0) + count
        anycast: set[str] = set()
        for name, step in WINDOW_STEPS.items():
            summary_of_step = step(self.storage, self.bus, begin, end, self.applications)
            anycast.update(summary_of_step.pop(ANYCAST_KEY, ()))
            totals = self.stats.steps.setdefault(name, {})
            for key, value in summary_of_step.items():  # running totals over all windows
                if isinstance(value, dict):
                    inner = totals.setdefault(key, {})
                    for k, v in value.items():
                        inner[k] = inner.get(k, 0) + v
                else:
                    totals[key] = totals.get(key, 0) + value
        if anycast:  # the verdicts again, now knowing which destinations are anycast
            enrich_window(self.storage, begin, end, self.enricher, self.registry,
                          self.applications, anycast_addresses=frozenset(anycast))

    def poll_once(self, timeout: float = 0.5, *, now: float | None = None) -> int:
        if not self._subscribed:
            self.bus.subscribe([topics.RESULTS], self.group, on_revoke=self._on_revoke)
            self._subscribed = True
        messages = self.bus.poll(max_records=5000, timeout=timeout)
        clock = time.monotonic() if now is None else now
        for message in messages:
            stamp = _timestamp(message)
            window = self.window_of(stamp) if stamp is not None else -1
            self._pending[window] = clock
            span = self._spans.setdefault(window, {}).setdefault(
                message.topic_partition, [message.offset, message.offset + 1])
            span[0] = min(span[0], message.offset)
            span[1] = max(span[1], message.offset + 1)
        self.process_settled(clock)
        return len(messages)

    def process_settled(self, now: float, *, force: bool = False) -> None:
        failing = self.stats.failing
        for window in sorted(self._pending):
            failure = failing.get(window)
            if not force and failure is not None and now < failure["next_at"]:
                continue
            if not force and now - self._pending[window] < self.settle_s:
                continue
            if window >= 0:
                try:
                    self.recompute(window)
                except Exception as exc:  # noqa: BLE001 - one window never stops the loop
                    if not self._failed(window, exc, now):
                        continue
                else:
                    failing.pop(window, None)
            del self._pending[window]
            for tp, (_, end) in self._spans.pop(window, {}).items():
                self._done[tp] = max(self._done.get(tp, 0), end)
        self._commit_safe()

    def _failed(self, window: int, error: Exception, now: float) -> bool:
        """Record a failed window; True when it is given up (commit past it)."""
        failure = self.stats.failing.get(window)
        attempts = failure["attempts"] + 1 if failure else 1
        text = f"{type(error).__name__}: {error}"[:500]
        self.stats.failures += 1
        self.stats.last_error = text
        gave_up = attempts >= MAX_WINDOW_ATTEMPTS
        wait = WINDOW_RETRY.delay(attempts)
        self.stats.failing[window] = {"error": text, "attempts": attempts,
                                      "next_at": now + wait, "gave_up": gave_up}
        if gave_up:
            log.error("window %s failed %d times (%s); given up until the next start",
                      window, attempts, text)
        else:
            log.warning("window %s failed (%s); retrying in %.0f s", window, text, wait)
        return gave_up

    def _commit_safe(self) -> None:
        """Commit, per partition, up to the first message of a window still pending (a
        crash then re-reads it and recomputes that window)."""
        safe: dict[TopicPartition, int] = {}
        for tp, end in self._done.items():
            firsts = [spans[tp][0] for spans in self._spans.values() if tp in spans]
            safe[tp] = min([end, *firsts])
        if safe:
            self.bus.commit(safe)

    def _on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        self.process_settled(time.monotonic(), force=True)

    def catch_up(self) -> int:
        """Queue every window holding traceroutes without a path verdict (results ingested
        while no analysis ran: ``grenswacht ingest`` into a stopped store, a crash)."""
        rows = self.storage.query(
            "SELECT DISTINCT intDiv(toUnixTimestamp(timestamp), {w:UInt32}) * {w:UInt32} "
            "FROM traceroute_hops WHERE destination_address != '' AND (source, measurement_id, "
            "probe_id, timestamp) NOT IN (SELECT source, measurement_id, probe_id, timestamp "
            "FROM path_verdicts)",
            {"w": self.window_s},
        ).rows
        for (window,) in rows:
            self._pending.setdefault(int(window), -float("inf"))
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        try:
            queued = self.catch_up()
        except GrenswachtError as exc:
            log.warning("catching up on unanalysed windows failed: %s", exc)
        else:
            if queued:
                log.info("analysing %d window(s) ingested earlier", queued)
        while not stop.is_set():
            self.poll_once()
        self.process_settled(time.monotonic(), force=True)
