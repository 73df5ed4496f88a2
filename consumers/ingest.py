"""Results topic -> normalise -> ClickHouse. Buffer, flush, then commit.

:class:`ResultSink` buffers normalised rows; :meth:`ResultSink.flush` is its only write.
:class:`IngestConsumer` polls the bus, feeds the sink, flushes when the batch is full or
old, and commits the offsets only after ClickHouse acknowledged the flush. On partition
revocation it flushes and commits first. A failed flush (storage unavailable) is retried
with backoff; nothing is committed meanwhile, so nothing is lost.

Every message that cannot be ingested becomes a ``dead_letters`` row with the reason, its
origin (topic/partition/offset and the producer's ``gw-origin``) and the bytes as received,
and is published on the dead-letter topic. The consumer never stops on one bad record.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from consumers.metrics import CONSUMER_LAG, DEAD_LETTERS, FLUSH_SECONDS, RESULTS_INGESTED
from consumers.storage import Storage
from schemas import topics
from schemas.bus import Bus, Message, TopicPartition, next_offsets
from schemas.errors import BackpressureMixin, BusError, ResultError, StorageError
from schemas.normalize import RAW_COLUMNS, TABLE_COLUMNS, RowBatch, normalize_into

log = logging.getLogger(__name__)

HEADER_DEAD_LETTER = "gw-dead-letter"
"""A producer that already knows a record is bad (an oversized line, a truncated file) sends
it with this header (value: reason) and the ingest consumer stores it as a dead letter."""
HEADER_DETAIL = "gw-detail"
HEADER_PAYLOAD_SIZE = "gw-payload-size"
MAX_DEAD_LETTER_PAYLOAD = 1_000_000
_RAW_SOURCE = RAW_COLUMNS.index("source")
_RAW_TYPE = RAW_COLUMNS.index("result_type")
DEAD_LETTER_COLUMNS = (
    "source", "origin", "topic", "partition", "offset", "reason", "detail", "payload_size",
    "payload_sha256", "payload",
)


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


@dataclass
class IngestStats:
    results: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_COLUMNS, 0))
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    flushes: int = 0
    retries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "traceroute_hops": self.rows["traceroute_hops"],
            "dns_answers": self.rows["dns_answers"],
            "ping_results": self.rows["ping_results"],
            "dead_letters": self.dead_letters,
            "dead_letter_reasons": dict(self.dead_letter_reasons),
            "flushes": self.flushes,
            "retries": self.retries,
        }


def _decode_header(message: Message, name: str) -> str:
    value = message.header(name)
    return value.decode("utf-8", "replace") if value is not None else ""


class ResultSink:
    """Buffers normalised rows and dead letters; :meth:`flush` writes them."""

    def __init__(self, storage: Storage, bus: Bus | None = None) -> None:
        self.storage = storage
        self.bus = bus
        self.batch = RowBatch()
        self.dead: list[tuple[Any, ...]] = []
        self.messages: list[Message] = []
        self.stats = IngestStats()

    def __len__(self) -> int:
        return len(self.messages)

    def add(self, message: Message) -> None:
        """Normalise one message into the buffer, or buffer it as a dead letter."""
        self.messages.append(message)
        source = _decode_header(message, topics.HEADER_SOURCE) or "unknown"
        marked = message.header(HEADER_DEAD_LETTER)
        if marked is not None:
            size = _decode_header(message, HEADER_PAYLOAD_SIZE)
            self._dead(
                message, source, marked.decode("utf-8", "replace"),
                _decode_header(message, HEADER_DETAIL),
                int(size) if size.isdigit() else len(message.value),
            )
            return
        if len(message.value) > topics.MAX_MESSAGE_BYTES:
            self._dead(message, source, "oversized",
                       f"{len(message.value)} bytes > {topics.MAX_MESSAGE_BYTES}")
            return
        try:
            result = orjson.loads(message.value)
        except orjson.JSONDecodeError as exc:
            self._dead(message, source, "invalid_json", str(exc)[:300])
            return
        try:
            normalize_into(result, self.batch, source=source, payload=message.value)
        except ResultError as exc:
            self._dead(message, source, exc.reason, exc.detail)

    def dead_letter(self, message: Message, source: str, reason: str, detail: str) -> None:
        """Buffer ``message`` as a dead letter (for consumers of other topics that share
        this sink's dead-letter writing)."""
        self.messages.append(message)
        self._dead(message, source, reason, detail)

    def _dead(
        self, message: Message, source: str, reason: str, detail: str, size: int | None = None
    ) -> None:
        payload = message.value[:MAX_DEAD_LETTER_PAYLOAD]
        self.dead.append((
            source, _decode_header(message, topics.HEADER_ORIGIN), message.topic,
            message.partition, message.offset, reason, detail[:2000],
            size if size is not None else len(message.value),
            hashlib.sha256(message.value).hexdigest(),
            payload.decode("utf-8", "replace"),
        ))

    def discard(self) -> None:
        """Forget the buffer without writing it (its offsets were not committed)."""
        self.batch.clear()
        self.dead.clear()
        self.messages.clear()

    def dedup_token(self) -> str:
        """(topic, partition, first offset, last offset) of every partition in the batch."""
        spans: dict[TopicPartition, list[int]] = {}
        for message in self.messages:
            span = spans.setdefault(message.topic_partition, [message.offset, message.offset])
            span[0] = min(span[0], message.offset)
            span[1] = max(span[1], message.offset)
        text = ";".join(
            f"{tp.topic}/{tp.partition}/{a}-{b}" for tp, (a, b) in sorted(spans.items())
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def flush(self) -> dict[TopicPartition, int]:
        """Write everything buffered; return the offsets that may now be committed.
        On failure the buffer is kept, so the caller can retry the same flush."""
        if not self.messages:
            return {}
        token = self.dedup_token()
        for table in TABLE_COLUMNS:
            if self.batch.rows(table):
                columns = dict(zip(TABLE_COLUMNS[table], self.batch.columns(table), strict=True))
                with FLUSH_SECONDS.labels(table).time():
                    self.storage.insert(table, columns, dedup_token=token)
        if self.dead:
            columns = dict(zip(DEAD_LETTER_COLUMNS, zip(*self.dead, strict=True), strict=True))
            self.storage.insert("dead_letters", columns, dedup_token=token)
            if self.bus is not None:
                for row in self.dead:
                    record = dict(zip(DEAD_LETTER_COLUMNS, row, strict=True))
                    self.bus.publish(topics.DEAD_LETTERS, orjson.dumps(record),
                                     key=str(record["topic"]).encode())
                self.bus.flush()
        offsets = next_offsets(self.messages)
        ingested = Counter((row[_RAW_SOURCE], row[_RAW_TYPE])
                           for row in self.batch.tables["raw_results"])
        for (source, kind), count in ingested.items():
            RESULTS_INGESTED.labels(source, kind).inc(count)
        for row in self.dead:
            DEAD_LETTERS.labels(row[5]).inc()
        self.stats.results += self.batch.results
        for table in TABLE_COLUMNS:
            self.stats.rows[table] += self.batch.rows(table)
        self.stats.dead_letters += len(self.dead)
        for row in self.dead:
            reasons = self.stats.dead_letter_reasons
            reasons[row[5]] = reasons.get(row[5], 0) + 1
        self.stats.flushes += 1
        self.discard()
        return offsets


class IngestConsumer:
    """The ingest component: one member of the ingest consumer group."""

    def __init__(
        self,
        bus: Bus,
        storage: Storage,
        *,
        group: str = "grenswacht-ingest",
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        retry_max_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self.sink = ResultSink(storage, bus)
        self.group = group
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_max_s = retry_max_s
        self._oldest = 0.0
        self._subscribed = False
        self.stop_event = threading.Event()

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

    def flush_and_commit(self, *, retry: bool = True) -> bool:
        """Flush the sink and commit. While storage is unavailable, retry with backoff
        (``retry``) or give up without committing (the messages will come again)."""
        delay = 0.2
        while True:
            try:
                with gc_paused():
                    offsets = self.sink.flush()
                break
            except (StorageError, BusError) as exc:
                if not retry or self.stop_event.is_set():
                    log.error("flush failed (%s); not committed, will be redelivered", exc)
                    return False
                self.sink.stats.retries += 1
                wait = getattr(exc, "retry_after", 0.0) if isinstance(exc, BackpressureMixin) else 0
                wait = min(max(delay, wait), self.retry_max_s)
                log.warning("flush failed (%s); retrying in %.1f s, nothing committed", exc, wait)
                self.stop_event.wait(wait)
                delay = min(delay * 2, self.retry_max_s)
        if offsets:
            self.bus.commit(offsets)
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
        due = len(self.sink) >= self.batch_size or (
            self.sink.messages and time.monotonic() - self._oldest >= self.flush_interval_s
        )
        if due:
            self.flush_and_commit()
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
