"""The analysis consumer: keeps verdicts and findings current as results arrive.

It reads the results topic in a consumer group of its own and notes which time windows the
new results fall into. A window is analysed (:func:`consumers.pipeline.analyse_window`:
one pass, every table written once, the verdicts published) once it has been quiet for
``settle_s`` (so the ingest consumer has stored its rows) — and, while results keep
arriving, at least every ``max_delay_s`` after its first unanalysed result. Analysing is
idempotent (ReplacingMergeTree), so a window may be analysed again; offsets are committed
only up to the first message of a window that is still pending.

A window whose analysis fails is recorded with its error (:attr:`AnalysisStats.failing`,
shown in ``grenswacht status``), skipped, and retried after a bounded exponential backoff
(``retry_initial_s`` doubling up to ``retry_max_s``, the one retry policy of
:mod:`schemas.retry`): never a hot loop, and the other windows go on. After
:data:`MAX_WINDOW_ATTEMPTS` failures a window is given up: it stays listed in the status,
its messages are committed, and the next start's catch-up queues it again. Timestamps
outside what the tables hold (:mod:`schemas.column_limits`) name no window: ingest
dead-letters those results. :func:`analyse_windows` is the same without a bus
(``grenswacht ingest``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from consumers.metrics import FINDINGS
from consumers.pipeline import (
    PIPELINE_VERSION,
    AnalysisContext,
    WindowInput,
    WindowSummary,
    analyse_span,
    analyse_window,
    read_input,
    split_input,
)
from schemas import topics
from schemas.bus import Bus, TopicPartition
from schemas.errors import GrenswachtError
from schemas.normalize import MAX_TIMESTAMP, MIN_TIMESTAMP
from schemas.retry import RetryPolicy

log = logging.getLogger(__name__)

MAX_WINDOW_ATTEMPTS = 6
"""Failures after which a window is given up until the next start (its catch-up)."""


@dataclass
class Failure:
    failures: int
    error: str
    retry_at: float  # monotonic clock
    gave_up: bool = False


@dataclass
class AnalysisStats:
    windows: int = 0
    paths: int = 0
    home_paths: int = 0
    corrections: int = 0
    failures: int = 0
    applications: int = 0
    messages: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: dict[int, Failure] = field(default_factory=dict)
    last_error: str = ""

    def add(self, summary: WindowSummary) -> None:
        self.windows += 1
        self.paths += summary.paths
        self.home_paths += summary.home_paths
        self.corrections += summary.corrections
        self.applications += len(summary.applications)
        self.messages += summary.messages
        for verdict, count in summary.classes.items():
            self.classes[verdict] = self.classes.get(verdict, 0) + count
        for kind, count in summary.kinds.items():
            self.findings[kind] = self.findings.get(kind, 0) + count
            FINDINGS.labels(kind).inc(count)
        for name, values in summary.steps.items():  # running totals over all windows
            totals = self.steps.setdefault(name, {})
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    totals[key] = totals.get(key, 0) + value

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        clock = time.monotonic() if now is None else now
        return {
            "windows": self.windows, "paths": self.paths, "home_paths": self.home_paths,
            "applications": self.applications, "classes": dict(self.classes),
            "findings": dict(self.findings), "corrections": self.corrections,
            "messages": self.messages, "failures": self.failures, "steps": self.steps,
            "last_error": self.last_error,
            "failing_windows": {
                dt.datetime.fromtimestamp(window, dt.UTC).isoformat(): {
                    "failures": f.failures, "error": f.error, "gave_up": f.gave_up,
                    "retry_in_s": None if f.gave_up else round(max(0.0, f.retry_at - clock), 1)}
                for window, f in sorted(self.failing.items())},
        }


def result_timestamp(value: bytes) -> int | None:
    """The ``timestamp`` of one result as received, or None when it names no window: not
    JSON, not an object, or outside what the tables hold (ingest dead-letters those)."""
    try:
        result = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    stamp = result.get("timestamp") if isinstance(result, dict) else None
    if type(stamp) is not int or not MIN_TIMESTAMP <= stamp <= MAX_TIMESTAMP:
        return None
    return stamp


def result_window(value: bytes, window_s: int) -> int | None:
    """The start of the analysis window one result as received falls into (or None)."""
    stamp = result_timestamp(value)
    return None if stamp is None else stamp - stamp % window_s


def window_bounds(start: int, window_s: int) -> tuple[dt.datetime, dt.datetime]:
    begin = dt.datetime.fromtimestamp(start, dt.UTC)
    return begin, begin + dt.timedelta(seconds=window_s)


_UNANALYSED_SQL = """
SELECT DISTINCT intDiv(toUnixTimestamp(timestamp), {w:UInt32}) * {w:UInt32} AS window
FROM TABLE WHERE destination_address != '' AND (source, measurement_id, probe_id, timestamp)
  NOT IN (SELECT source, measurement_id, probe_id, timestamp FROM path_verdicts
          WHERE pipeline >= {version:UInt16})
"""


def unanalysed_windows(storage: Any, window_s: int) -> list[int]:
    """Windows holding traceroute or MDA results without a path verdict of the current
    pipeline (ingested while no analysis ran, a crash, or rows of an older version)."""
    found: set[int] = set()
    for table in ("traceroute_hops", "mda_links"):
        rows = storage.query(_UNANALYSED_SQL.replace("TABLE", table),
                             {"w": window_s, "version": PIPELINE_VERSION}).rows
        found.update(int(row[0]) for row in rows)
    return sorted(found)


Progress = Callable[[int, int, WindowSummary | None], None]


def analyse_windows(storage: Any, bus: Bus | None, context: AnalysisContext,
                    windows: Iterable[int], *, window_s: int = 3600,
                    stats: AnalysisStats | None = None,
                    progress: Progress | None = None,
                    stop: threading.Event | None = None) -> AnalysisStats:
    """Analyse each window once, in time order; a failing one is recorded and skipped.

    Windows are analysed in spans (:func:`spans`: up to a day, at most
    :data:`MAX_SPAN_ROWS` rows): one read, one write per table and one read of the stored
    period per span (:func:`consumers.pipeline.analyse_span`), the same verdicts as one
    window at a time. When a span's reads or writes fail, its windows are analysed one by
    one, so that one bad window does not fail the others. ``stop`` is checked between
    spans (the windows not reached stay unanalysed: the next catch-up finds them)."""
    stats = stats or AnalysisStats()
    ordered = sorted(set(windows))
    counted = 0
    for span in spans(storage, ordered, window_s):
        if stop is not None and stop.is_set():
            break
        outcomes: list[WindowSummary | Exception] = []
        inputs: dict[int, WindowInput] = {}
        try:
            inputs = _prefetch(storage, context, span, window_s)
            outcomes = analyse_span(storage, bus, [inputs[w] for w in span], context)
        except Exception as exc:  # noqa: BLE001 - the windows are tried one by one
            log.warning("analysing %d window(s) together failed (%s: %s); one by one",
                        len(span), type(exc).__name__, str(exc)[:200])
            outcomes = [_one(storage, bus, context, w, window_s, inputs.get(w)) for w in span]
        for window, outcome in zip(span, outcomes, strict=True):
            counted += 1
            if isinstance(outcome, Exception):
                text = f"{type(outcome).__name__}: {outcome}"[:500]
                stats.failures += 1
                stats.last_error = text
                known = stats.failing.get(window)
                stats.failing[window] = Failure((known.failures if known else 0) + 1, text,
                                                time.monotonic())
                log.warning("analysing window %s failed: %s", window, text)
                summary = None
            else:
                summary = outcome
                stats.add(summary)
                stats.failing.pop(window, None)
            if progress is not None:
                progress(counted, len(ordered), summary)
    return stats


def _one(storage: Any, bus: Bus | None, context: AnalysisContext, window: int, window_s: int,
         data: WindowInput | None) -> WindowSummary | Exception:
    try:
        return analyse_window(storage, bus, *window_bounds(window, window_s), context,
                              data=data)
    except Exception as exc:  # noqa: BLE001 - recorded by the caller
        return exc


PREFETCH_S = 24 * 3600  # rows of up to a day of windows are read at once
MAX_SPAN_ROWS = 100_000
"""Rows (``traceroute_hops`` + ``mda_links``) read and analysed at once at most: memory is
bounded by this, not by the input (a window holding more is a span of its own)."""

_ROWS_SQL = """
SELECT intDiv(toUnixTimestamp(timestamp), {w:UInt32}) * {w:UInt32} AS window, count()
FROM TABLE WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
GROUP BY window
"""


def spans(storage: Any, ordered: Sequence[int], window_s: int) -> list[list[int]]:
    """``ordered`` windows in groups of consecutive windows within :data:`PREFETCH_S` of
    the first and with at most :data:`MAX_SPAN_ROWS` rows (counted before reading)."""
    if not ordered:
        return []
    start, _ = window_bounds(ordered[0], window_s)
    _, end = window_bounds(ordered[-1], window_s)
    rows: dict[int, int] = {}
    for table in ("traceroute_hops", "mda_links"):
        for window, count in storage.query(_ROWS_SQL.replace("TABLE", table),
                                           {"w": window_s, "start": start, "end": end}).rows:
            rows[int(window)] = rows.get(int(window), 0) + int(count)
    out: list[list[int]] = []
    held = 0
    for window in ordered:
        size = rows.get(window, 0)
        if out and window < out[-1][0] + PREFETCH_S and held + size <= MAX_SPAN_ROWS:
            out[-1].append(window)
            held += size
        else:
            out.append([window])
            held = size
    return out


def _prefetch(storage: Any, context: AnalysisContext, span: Sequence[int],
              window_s: int) -> dict[int, WindowInput]:
    start, _ = window_bounds(span[0], window_s)
    _, end = window_bounds(span[-1], window_s)
    data = read_input(storage, start, end, context)
    found = split_input(data, window_s, context.verdicts.period_s)
    for window in span:  # a window without rows still gets an (empty) input
        if window not in found:
            begin, finish = window_bounds(window, window_s)
            found[window] = WindowInput(begin, finish, [])
    return found


@dataclass
class _Pending:
    first: float  # first unanalysed message (monotonic clock)
    last: float  # latest message


class AnalysisLoop:
    def __init__(
        self,
        storage: Any,
        bus: Bus,
        context: AnalysisContext,
        *,
        group: str = "grenswacht-analysis",
        window_s: int = 3600,
        settle_s: float = 5.0,
        max_delay_s: float = 60.0,
        retry_initial_s: float = 5.0,
        retry_max_s: float = 600.0,
    ) -> None:
        self.storage = storage
        self.bus = bus
        self.context = context
        self.group = group
        self.window_s = window_s
        self.settle_s = settle_s
        self.max_delay_s = max_delay_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.stats = AnalysisStats()
        self._pending: dict[int, _Pending] = {}
        # window -> partition -> [first offset, next offset] of its messages
        self._spans: dict[int, dict[TopicPartition, list[int]]] = {}
        self._done: dict[TopicPartition, int] = {}
        self._subscribed = False
        self.received = 0  # messages polled since start (``grenswacht ingest`` waits on it)

    def status(self) -> dict[str, Any]:
        return {**self.stats.as_dict(), "received": self.received,
                "pending_windows": len([w for w in self._pending if w >= 0])}

    def window_of(self, timestamp: int) -> int:
        return timestamp - timestamp % self.window_s

    def recompute(self, start: int) -> WindowSummary:
        """Analyse the window starting at ``start`` (raises what the pipeline raises)."""
        summary = analyse_window(self.storage, self.bus, *window_bounds(start, self.window_s),
                                 self.context)
        self.stats.add(summary)
        return summary

    def poll_once(self, timeout: float = 0.5, *, now: float | None = None) -> int:
        if not self._subscribed:
            self.bus.subscribe([topics.RESULTS], self.group, on_revoke=self._on_revoke)
            self._subscribed = True
        messages = self.bus.poll(max_records=5000, timeout=timeout)
        clock = time.monotonic() if now is None else now
        self.received += len(messages)
        for message in messages:
            stamp = result_timestamp(message.value)
            window = self.window_of(stamp) if stamp is not None else -1
            pending = self._pending.get(window)
            if pending is None:
                self._pending[window] = _Pending(clock, clock)
            else:
                pending.last = clock
            span = self._spans.setdefault(window, {}).setdefault(
                message.topic_partition, [message.offset, message.offset + 1])
            span[0] = min(span[0], message.offset)
            span[1] = max(span[1], message.offset + 1)
        self.process_settled(clock)
        return len(messages)

    def _due(self, window: int, now: float, force: bool) -> bool:
        failed = self.stats.failing.get(window)
        if failed is not None and now < failed.retry_at:
            return False
        if force or failed is not None:
            return True
        pending = self._pending[window]
        return now - pending.last >= self.settle_s or now - pending.first >= self.max_delay_s

    def process_settled(self, now: float, *, force: bool = False) -> None:
        for window in sorted(self._pending):
            if not self._due(window, now, force):
                continue
            if window >= 0:
                try:
                    self.recompute(window)
                except Exception as exc:  # noqa: BLE001 - one window never stops the loop
                    if not self._failed(window, exc, now):
                        continue
                else:
                    self.stats.failing.pop(window, None)
            del self._pending[window]
            for tp, (_, end) in self._spans.pop(window, {}).items():
                self._done[tp] = max(self._done.get(tp, 0), end)
        self._commit_safe()

    def _failed(self, window: int, exc: Exception, now: float) -> bool:
        """Record a failed window; True when it is given up (its messages are committed)."""
        known = self.stats.failing.get(window)
        failures = (known.failures if known else 0) + 1
        text = f"{type(exc).__name__}: {exc}"[:500]
        wait = RetryPolicy(self.retry_initial_s, self.retry_max_s).delay(failures)
        gave_up = failures >= MAX_WINDOW_ATTEMPTS
        self.stats.failing[window] = Failure(failures, text, now + wait, gave_up)
        self.stats.failures += 1
        self.stats.last_error = text
        if gave_up:
            log.error("window %s failed %d times (%s); given up until the next start",
                      window, failures, text)
        else:
            log.warning("window %s failed (%s); retrying in %.0f s", window, text, wait)
        return gave_up

    def _commit_safe(self) -> None:
        """Commit, per partition, up to the first message of a window still pending (a
        crash then re-reads it and analyses that window again)."""
        safe: dict[TopicPartition, int] = {}
        for tp, end in self._done.items():
            firsts = [spans[tp][0] for spans in self._spans.values() if tp in spans]
            safe[tp] = min([end, *firsts])
        if safe:
            self.bus.commit(safe)

    def _on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        self.process_settled(time.monotonic(), force=True)

    def catch_up(self) -> int:
        """Queue every window with results but no path verdict of the current pipeline."""
        windows = unanalysed_windows(self.storage, self.window_s)
        for window in windows:
            self._pending.setdefault(window, _Pending(-float("inf"), -float("inf")))
        return len(windows)

    def run(self, stop: threading.Event) -> None:
        """Catch up on the windows ingested earlier (in spans, :func:`analyse_windows`;
        a window that fails there is retried with the loop's backoff), then follow the
        results topic until ``stop``."""
        try:
            windows = unanalysed_windows(self.storage, self.window_s)
        except GrenswachtError as exc:
            log.warning("catching up on unanalysed windows failed: %s", exc)
        else:
            if windows:
                log.info("analysing %d window(s) ingested earlier", len(windows))
                analyse_windows(self.storage, self.bus, self.context, windows,
                                window_s=self.window_s, stats=self.stats, stop=stop)
                for window in self.stats.failing:
                    self._pending.setdefault(window, _Pending(-float("inf"), -float("inf")))
        while not stop.is_set():
            self.poll_once()
        self.process_settled(time.monotonic(), force=True)
