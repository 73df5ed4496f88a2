"""Results topic -> normalise -> ClickHouse. Buffer, flush, then commit.

:class:`~consumers.sink.ResultSink` buffers normalised rows; its ``write`` is the only write
(content deduplication tokens, child rows before ``raw_results``, bad rows isolated and
dead-lettered: see :mod:`consumers.sink`). :class:`IngestConsumer` polls the bus, feeds the
sink, flushes when the batch is full (``batch_size`` messages or ``batch_max_bytes``) or
old, and commits the offsets only after ClickHouse acknowledged the flush. On partition
revocation it flushes and commits first.

A due batch is written by a writer thread while the next one is decoded and checked
(ClickHouse works outside the GIL, so Python and ClickHouse use both cores): at most one
write is in flight — the next waits for it — so memory stays bounded by two batches, the
batches are written in order, and offsets are committed by the polling thread only after
their write was acknowledged. A flush that meets backpressure (storage down or
full) is retried with the one retry policy (:mod:`schemas.retry`); meanwhile nothing is
committed, ``status()["waiting"]`` says since when and why, and the gauge
``grenswacht_ingest_waiting`` is 1. Nothing else is retried.

Every message that cannot be ingested becomes a ``dead_letters`` row with the reason, its
origin (topic/partition/offset and the producer's ``gw-origin``) and the bytes as received,
and is published on the dead-letter topic. The consumer never stops on one bad record.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from consumers.metrics import CONSUMER_LAG, INGEST_RETRIES, INGEST_WAITING
from consumers.sink import (
    DEAD_LETTER_COLUMNS,
    HEADER_DEAD_LETTER,
    HEADER_DETAIL,
    HEADER_PAYLOAD_SHA256,
    HEADER_PAYLOAD_SIZE,
    MAX_DEAD_LETTER_PAYLOAD,
    Buffer,
    IngestStats,
    ResultSink,
)
from consumers.storage import Storage
from schemas import topics
from schemas.bus import Bus, TopicPartition
from schemas.errors import BusClosed, BusError, StorageUnavailable
from schemas.retry import RetryPolicy

log = logging.getLogger(__name__)

__all__ = [
    "DEAD_LETTER_COLUMNS", "HEADER_DEAD_LETTER", "HEADER_DETAIL", "HEADER_PAYLOAD_SHA256",
    "HEADER_PAYLOAD_SIZE", "MAX_DEAD_LETTER_PAYLOAD", "IngestConsumer", "IngestStats",
    "ResultSink", "gc_paused",
]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a batch. Decoding and normalising create
    hundreds of thousands of small acyclic objects; letting gen-0 collections scan them
    again and again costs more than the work itself (measured in bench/ingest.py)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class IngestConsumer:
    """The ingest component: one member of the ingest consumer group."""

    def __init__(
        self,
        bus: Bus,
        storage: Storage,
        *,
        group: str = "grenswacht-ingest",
        batch_size: int = 5000,
        batch_max_bytes: int = 16 * 1024 * 1024,
        flush_interval_s: float = 1.0,
        retry_max_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self.sink = ResultSink(storage, bus)
        self.group = group
        self.batch_size = batch_size
        self.batch_max_bytes = batch_max_bytes
        self.flush_interval_s = flush_interval_s
        self.retry = RetryPolicy(initial_s=0.2, max_s=retry_max_s)
        self._oldest = 0.0
        self._subscribed = False
        self.stop_event = threading.Event()
        self._writer: threading.Thread | None = None
        self._written: dict[TopicPartition, int] | None = None
        self._write_error: BaseException | None = None

    @property
    def stats(self) -> IngestStats:
        return self.sink.stats

    def _subscribe(self) -> None:
        if not self._subscribed:
            self.bus.subscribe([topics.RESULTS], self.group, on_revoke=self._on_revoke)
            self._subscribed = True

    def _on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        # no retry loop here (it would hold up the group): if the flush fails, drop the
        # buffer; nothing of it was committed, so the partitions' next owner reads it again
        if not self.flush_and_commit(retry=False):
            self.sink.discard()
        # what comes after a rebalance may be a batch another member failed to write
        self.sink.verify_next = True

    def _waiting(self, error: BaseException, seconds: float, failures: int) -> None:
        stats = self.sink.stats
        stats.retries += 1
        INGEST_RETRIES.labels(self.group).inc()
        INGEST_WAITING.labels(self.group).set(1)
        since = stats.waiting["since"] if stats.waiting else round(time.time(), 3)
        stats.waiting = {"since": since, "reason": str(error)[:500],
                         "kind": type(error).__name__, "retry_in_s": round(seconds, 3),
                         "failures": failures}
        log.warning("flush failed (%s); retrying in %.1f s, nothing committed", error, seconds)

    def _policy(self, retry: bool) -> RetryPolicy:
        return self.retry if retry else RetryPolicy(attempts=1)

    def _write(self, buf: Buffer, retry: bool) -> dict[TopicPartition, int] | None:
        """Write ``buf`` with the retry policy; None when it could not be stored."""

        def write() -> dict[TopicPartition, int]:
            with gc_paused():
                return self.sink.write(buf)

        try:
            offsets = self._policy(retry).call(
                write, retry_on=(StorageUnavailable, BusError), never=(BusClosed,),
                stop=self.stop_event, on_retry=self._waiting)
        except (StorageUnavailable, BusError) as exc:
            log.error("flush failed (%s); not committed, will be redelivered", exc)
            return None
        self.sink.stats.waiting = None
        INGEST_WAITING.labels(self.group).set(0)
        return offsets

    def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if offsets:
            try:
                self.bus.commit(offsets)
            except BusError as exc:  # stored already: a redelivery is deduplicated
                log.warning("commit failed (%s); the batch is stored and may come again", exc)

    def _finish_write(self) -> bool:
        """Wait for the write in flight (if any) and commit what it stored."""
        if self._writer is None:
            return True
        self._writer.join()
        self._writer = None
        error, self._write_error = self._write_error, None
        if error is not None:
            raise error
        offsets, self._written = self._written, None
        if offsets is None:
            return False
        self._commit(offsets)
        return True

    def _write_in_background(self) -> None:
        """Hand the buffer to the writer thread (after the previous write finished)."""
        if not self._finish_write():
            self.sink.discard()  # not committed: delivered again (see flush_and_commit)
            return
        buf = self.sink.take()

        def run() -> None:
            try:
                self._written = self._write(buf, retry=True)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the polling thread
                self._write_error = exc

        self._writer = threading.Thread(target=run, name=f"{self.group}-writer", daemon=True)
        self._writer.start()

    def flush_and_commit(self, *, retry: bool = True) -> bool:
        """Finish the write in flight, flush the sink and commit, in this thread. On
        backpressure retry with backoff (``retry``) until it goes through or the consumer
        stops; without ``retry`` give up at once, without committing (the messages will
        come again)."""
        if not self._finish_write():
            # the write in flight gave up (the consumer stops): commit nothing after it,
            # or its messages would count as done; they and these come again
            return False
        offsets = self._write(self.sink.buffer, retry)
        if offsets is None:
            return False
        self.sink.discard()
        self._commit(offsets)
        return True

    def poll_once(self, timeout: float = 0.5) -> int:
        """Poll once, buffer what came, flush+commit when due. Returns messages polled."""
        self._subscribe()
        messages = self.bus.poll(max_records=self.batch_size, timeout=timeout)
        for tp, behind in self.bus.lag().items():
            CONSUMER_LAG.labels(tp.topic, str(tp.partition), self.group).set(behind)
        if messages:
            if not self.sink.messages:
                self._oldest = time.monotonic()
            with gc_paused():
                for message in messages:
                    self.sink.add(message)
                    if self.sink.bytes >= self.batch_max_bytes:
                        self._write_in_background()  # bounded whatever the messages hold
        due = len(self.sink) >= self.batch_size or (
            self.sink.messages and time.monotonic() - self._oldest >= self.flush_interval_s
        )
        if due:
            self._write_in_background()
        elif self._writer is not None and not self._writer.is_alive():
            self._finish_write()  # commit as soon as the write is done
        return len(messages)

    def drain(self, idle_timeout: float = 0.2) -> None:
        """Consume until a poll returns nothing, then flush and commit (file ingest)."""
        while self.poll_once(timeout=idle_timeout):
            pass
        self.flush_and_commit()

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until ``stop`` is set; then flush, commit and return."""
        if stop is not None:
            self.stop_event = stop
        while not self.stop_event.is_set():
            self.poll_once()
        self.flush_and_commit(retry=False)
