"""The ClickHouse sink of the ingest consumer: buffer, then :meth:`ResultSink.flush`, the only
write. Nothing lost, nothing doubled:

* **Deduplication from content.** Every insert carries a token derived from what it stores:
  the (source, payload) of each result in it and :data:`schemas.normalize.ROWS_VERSION`
  (dead letters: origin, reason and payload hash). Never from bus offsets, which start at 0
  in every process: a later batch that merely sits at the same offsets is a different
  batch. A replayed batch (crash, retry, rebalance) has the same token and is ignored;
  ReplacingMergeTree natural keys catch replays that were cut differently (read FINAL).
* **ClickHouse explodes the regular traceroutes.** A traceroute that
  :func:`schemas.explode.explode_into` accepts goes to ClickHouse as one JSON line
  (``traceroute_input``, whose materialized view writes its ``traceroute_hops`` rows); every
  other result is normalised here (:func:`schemas.normalize.normalize_into`). The rows are
  the same either way (``tests/schemas/test_explode.py``).
* **Order.** Child rows (traceroute_hops, dns_answers, ping_results, mda_links, then the
  exploded lines) first, then the dead letters, then ``raw_results`` — a separate insert,
  because ClickHouse gives no order among the views of one insert: a result's raw row is
  written only after its rows were acknowledged, so it marks the result complete. Offsets
  are committed after that.
* **Isolation.** The normaliser refuses values that do not fit their columns
  (:mod:`schemas.column_limits`), so inserts should not fail on data; if one still does
  for a reason that is not backpressure, the insert is split in halves until the failing
  result(s) are found (a bisection: a few inserts per bad result). Those become dead
  letters (reason ``insert_rejected``, with ClickHouse's error), the rest is stored, the
  batch is committed. An exploded line that ClickHouse refuses (its JSON parser refuses
  duplicate keys, which orjson resolves to the last) is normalised here instead, and only
  dead-lettered if those rows fail too. Should every result of a table fail alone for an
  unknown reason, the store is in trouble, not the data: that is raised as backpressure.
* **Backpressure** (:class:`~schemas.errors.StorageUnavailable`: storage down, disk full,
  out of memory, too many parts) is raised to the caller, which retries the whole flush
  with backoff.
* **An insert that failed has an unknown outcome.** ClickHouse records a block's token in
  the table's deduplication log before it commits the part; an insert that fails in between
  (seen with a full disk) leaves the token without its rows, and a retry with the same token
  would be dropped as a duplicate — rows lost while the raw row says "complete". So a retried
  write salts every token with its attempt number (rows that did go through the first time
  are folded by the ReplacingMergeTree natural keys), and the first write of a sink and the
  first after a rebalance (which may replay a batch another process failed to write) are
  checked against the store: every result's raw row and child rows are counted, and what is
  missing is written again under a salted token (:meth:`ResultSink._verify`).

Longer than 400 lines because the write of one batch (order, tokens, bisection, the Python
fallback of refused lines, counting) is one piece that must be read together.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from consumers.metrics import DEAD_LETTERS, FLUSH_SECONDS, RESULTS_INGESTED, VALUES_NULLED
from consumers.storage import Storage
from schemas import topics
from schemas.bus import Bus, Message, TopicPartition, next_offsets
from schemas.errors import QueryError, ResultError, RowsRejected, StorageUnavailable
from schemas.explode import INPUT_FORMAT, INPUT_SETTINGS, explode_into
from schemas.normalize import (
    EXPLODE_TABLES,
    RESULT_TABLE,
    ROWS_VERSION,
    TABLE_COLUMNS,
    RowBatch,
    normalize_into,
)

log = logging.getLogger(__name__)

HEADER_DEAD_LETTER = "gw-dead-letter"
"""A producer that already knows a record is bad (an oversized line, a truncated file) sends
it with this header (value: reason) and the ingest consumer stores it as a dead letter."""
HEADER_DETAIL = "gw-detail"
HEADER_PAYLOAD_SIZE = "gw-payload-size"
HEADER_PAYLOAD_SHA256 = "gw-payload-sha256"
"""With an oversized line: the sha256 of the whole line, computed while it was read."""
MAX_DEAD_LETTER_PAYLOAD = 1_000_000
"""Bytes of a bad input kept in ``dead_letters.payload`` (the size and hash are of all)."""
TOPIC_DEAD_LETTER_PAYLOAD = 64 * 1024
"""Characters of the payload in a dead-letter *topic* record, so that the record, JSON
escapes included, always fits a message (:data:`schemas.topics.MAX_MESSAGE_BYTES`)."""
CHILD_TABLES = tuple(table for table in TABLE_COLUMNS if table != "raw_results")
WRITE_ORDER = (*CHILD_TABLES, *EXPLODE_TABLES)
"""The inserts before ``raw_results``: rows made here, then the lines ClickHouse explodes."""
DEAD_LETTER_COLUMNS = (
    "source", "origin", "topic", "partition", "offset", "reason", "detail", "payload_size",
    "payload_sha256", "payload",
)
_REASON = DEAD_LETTER_COLUMNS.index("reason")
_RAW_SOURCE = TABLE_COLUMNS["raw_results"].index("source")
_RAW_TYPE = TABLE_COLUMNS["raw_results"].index("result_type")
_RAW_DESTINATION = TABLE_COLUMNS["raw_results"].index("destination")
_VERSION = f"rows-v{ROWS_VERSION}".encode()


@dataclass
class IngestStats:
    results: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_COLUMNS, 0))
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    nulled: dict[str, int] = field(default_factory=dict)
    flushes: int = 0
    retries: int = 0
    waiting: dict[str, Any] | None = None
    """While a flush waits for storage: since (epoch s), reason, retry_in_s, failures."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "traceroute_hops": self.rows["traceroute_hops"],
            "dns_answers": self.rows["dns_answers"],
            "ping_results": self.rows["ping_results"],
            "dead_letters": self.dead_letters,
            "dead_letter_reasons": dict(self.dead_letter_reasons),
            "values_nulled": dict(self.nulled),
            "flushes": self.flushes,
            "retries": self.retries,
            "waiting": dict(self.waiting) if self.waiting else None,
        }


def _header(message: Message, name: str) -> str:
    value = message.header(name)
    return value.decode("utf-8", "replace") if value is not None else ""


def dead_letter_row(
    message: Message, source: str, reason: str, detail: str, size: int | None = None,
    sha256: str = "",
) -> tuple[Any, ...]:
    """A ``dead_letters`` row (:data:`DEAD_LETTER_COLUMNS`) for ``message``. ``size`` and
    ``sha256`` are of the whole input when the message carries only its first bytes."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        sha256 = hashlib.sha256(message.value).hexdigest()
    return (
        source, _header(message, topics.HEADER_ORIGIN), message.topic, message.partition,
        message.offset, reason, detail[:2000],
        size if size is not None else len(message.value), sha256,
        message.value[:MAX_DEAD_LETTER_PAYLOAD].decode("utf-8", "replace"),
    )


def content_token(parts: Iterable[bytes]) -> str:
    """A deduplication token of an insert: the hash of what it stores (length-prefixed,
    so no two different sequences of parts hash alike)."""
    digest = hashlib.sha256(_VERSION)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:32]


class Buffer:
    """What a sink buffered: rows, lines and dead letters of one batch of messages."""

    __slots__ = ("attempts", "batch", "bytes", "dead", "messages", "results")

    def __init__(self) -> None:
        self.batch = RowBatch()
        self.dead: list[tuple[Any, ...]] = []
        self.messages: list[Message] = []
        self.results: list[tuple[Message, str]] = []
        """(message, source) of every normalised result, in the batch's order."""
        self.bytes = 0
        self.attempts = 0
        """Writes of this buffer that failed (their outcome is unknown): salts the tokens."""


def _salted(parts: Iterable[bytes], salt: str) -> Iterable[bytes]:
    yield from parts
    if salt:
        yield salt.encode()


class ResultSink:
    """Buffers normalised rows and dead letters; :meth:`flush` (or :meth:`take` then
    :meth:`write`) writes them."""

    def __init__(self, storage: Storage, bus: Bus | None = None) -> None:
        self.storage = storage
        self.bus = bus
        self.buffer = Buffer()
        self.stats = IngestStats()
        self.verify_next = True
        """Check the next write against the store (the first of a process, the first after a
        rebalance: it may replay a batch whose earlier insert failed elsewhere)."""

    @property
    def batch(self) -> RowBatch:
        return self.buffer.batch

    @property
    def dead(self) -> list[tuple[Any, ...]]:
        return self.buffer.dead

    @property
    def messages(self) -> list[Message]:
        return self.buffer.messages

    @property
    def results(self) -> list[tuple[Message, str]]:
        return self.buffer.results

    @property
    def bytes(self) -> int:
        return self.buffer.bytes

    def __len__(self) -> int:
        return len(self.messages)

    def add(self, message: Message) -> None:
        """Normalise one message into the buffer, or buffer it as a dead letter."""
        self.messages.append(message)
        self.buffer.bytes += len(message.value)
        source = _header(message, topics.HEADER_SOURCE) or "unknown"
        marked = message.header(HEADER_DEAD_LETTER)
        if marked is not None:
            size = _header(message, HEADER_PAYLOAD_SIZE)
            self._dead(message, source, marked.decode("utf-8", "replace"),
                       _header(message, HEADER_DETAIL),
                       int(size) if size.isascii() and size.isdigit() else None,
                       _header(message, HEADER_PAYLOAD_SHA256))
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
            if not explode_into(result, self.batch, source=source, payload=message.value):
                normalize_into(result, self.batch, source=source, payload=message.value)
        except ResultError as exc:
            self._dead(message, source, exc.reason, exc.detail)
            return
        except Exception as exc:  # noqa: BLE001 - one record never stops the consumer
            log.exception("normalising %s failed unexpectedly", _header(message,
                                                                         topics.HEADER_ORIGIN))
            self._dead(message, source, "normalize_failed", f"{type(exc).__name__}: {exc}")
            return
        self.results.append((message, source))

    def dead_letter(self, message: Message, source: str, reason: str, detail: str) -> None:
        """Buffer ``message`` as a dead letter (for consumers of other topics that share
        this sink's dead-letter writing, e.g. consumers/vantage_points.py)."""
        self.messages.append(message)
        self.buffer.bytes += len(message.value)
        self._dead(message, source, reason, detail)

    def _dead(
        self, message: Message, source: str, reason: str, detail: str,
        size: int | None = None, sha256: str = "",
    ) -> None:
        self.dead.append(dead_letter_row(message, source, reason, detail, size, sha256))

    def discard(self) -> None:
        """Forget the buffer without writing it (its offsets were not committed)."""
        self.buffer = Buffer()

    # -- writing ----------------------------------------------------------------------
    def _token(self, buf: Buffer, indices: Iterable[int], salt: str = "") -> str:
        results = buf.results
        salt = salt or (f"attempt-{buf.attempts}" if buf.attempts else "")
        return content_token(_salted(
            (part for i in indices
             for part in (results[i][1].encode(), results[i][0].value)), salt))

    def _rows(self, buf: Buffer, table: str, indices: Sequence[int]) -> list[tuple[Any, ...]]:
        rows = buf.batch.tables[table]
        if table == "raw_results":
            return [rows[i] for i in indices]
        spans = buf.batch.spans
        return [row for i in indices for row in rows[spans[i][1]:spans[i][2]]]

    def _insert(self, table: str, rows: Sequence[tuple[Any, ...]], token: str) -> None:
        if table in EXPLODE_TABLES:
            with FLUSH_SECONDS.labels(EXPLODE_TABLES[table]).time():
                self.storage.insert_lines(table, [row[0] for row in rows], fmt=INPUT_FORMAT,
                                          settings=INPUT_SETTINGS, dedup_token=token)
            log.debug("inserted %d lines into %s, rows into %s (token %s)", len(rows), table,
                      EXPLODE_TABLES[table], token)
            return
        names = DEAD_LETTER_COLUMNS if table == "dead_letters" else TABLE_COLUMNS[table]
        columns = dict(zip(names, zip(*rows, strict=True), strict=True))
        with FLUSH_SECONDS.labels(table).time():
            self.storage.insert(table, columns, dedup_token=token)
        log.debug("inserted %d rows into %s (token %s)", len(rows), table, token)

    def _write(self, buf: Buffer, table: str, indices: list[int], whole: bool) -> dict[int, str]:
        """Insert the rows of ``indices`` into ``table``; return the results that ClickHouse
        refused (index -> error). Backpressure propagates."""
        try:
            if whole:  # the fast path: the batch's own columns, one insert
                self._insert(table, buf.batch.tables[table], self._token(buf, indices))
            else:
                self._insert(table, self._rows(buf, table, indices), self._token(buf, indices))
            return {}
        except StorageUnavailable:
            raise
        except QueryError as exc:
            bad = self._bisect(buf, table, indices, exc)
            if len(bad) == len(indices) > 1 and not isinstance(exc, RowsRejected):
                raise StorageUnavailable(
                    f"every result's rows fail alone in {table}, so the store is at fault, "
                    f"not the data: {exc}", retry_after=5.0) from exc
            return bad

    def _bisect(self, buf: Buffer, table: str, indices: list[int],
                error: QueryError) -> dict[int, str]:
        if len(indices) == 1:
            return {indices[0]: str(error)}
        bad: dict[int, str] = {}
        middle = len(indices) // 2
        for part in (indices[:middle], indices[middle:]):
            try:
                self._insert(table, self._rows(buf, table, part), self._token(buf, part))
            except StorageUnavailable:
                raise
            except QueryError as exc:
                bad.update(self._bisect(buf, table, part, exc))
        return bad

    def _write_dead(self, rows: list[tuple[Any, ...]], salt: str = "") -> None:
        token = content_token(_salted(
            (f"{row[1]}\0{row[_REASON]}\0{row[8]}".encode() for row in rows), salt))
        try:
            self._insert("dead_letters", rows, token)
        except StorageUnavailable:
            raise
        except QueryError as exc:
            if len(rows) > 1:
                middle = len(rows) // 2
                self._write_dead(rows[:middle], salt)
                self._write_dead(rows[middle:], salt)
                return
            stripped = rows[0][:-1] + ("",)  # the payload alone may be what fails
            try:
                self._insert("dead_letters", [stripped], token)
            except StorageUnavailable:
                raise
            except QueryError:
                log.error("dead letter from %s cannot be stored: %s", rows[0][1], exc)

    def flush(self) -> dict[TopicPartition, int]:
        """Write everything buffered; return the offsets that may now be committed.
        On backpressure the buffer is kept, so the caller can retry the same flush."""
        offsets = self.write(self.buffer)
        self.buffer = Buffer()
        return offsets

    def take(self) -> Buffer:
        """The buffer, for :meth:`write` elsewhere (a writer thread); buffering starts anew."""
        buf, self.buffer = self.buffer, Buffer()
        return buf

    def write(self, buf: Buffer) -> dict[TopicPartition, int]:
        """Write ``buf``; return the offsets that may now be committed. On backpressure
        (:class:`~schemas.errors.StorageUnavailable`) ``buf`` still holds what it stores, so
        the same write can be retried (the inserts that went through are deduplicated)."""
        if not buf.messages:
            return {}
        try:
            return self._write_buffer(buf)
        except BaseException:
            buf.attempts += 1
            raise

    def _write_buffer(self, buf: Buffer) -> dict[TopicPartition, int]:
        batch = buf.batch
        salt = f"attempt-{buf.attempts}" if buf.attempts else ""
        every = range(len(buf.results))
        rejected: dict[int, str] = {}
        normalised: dict[int, tuple[str, int]] = {}
        refused_by_normaliser: dict[int, tuple[Any, ...]] = {}
        for table in WRITE_ORDER:
            if batch.rows(table):
                mine = [i for i in every if batch.spans[i][0] == table]
                refused = self._write(buf, table, mine, whole=True)
                if table in EXPLODE_TABLES and refused:
                    refused = self._normalise_refused(buf, refused, normalised,
                                                      refused_by_normaliser)
                rejected.update(refused)
        stored = [i for i in every if i not in rejected and i not in refused_by_normaliser]
        dead = [*buf.dead, *refused_by_normaliser.values(), *self._rejected_rows(buf, rejected)]
        if dead:
            self._write_dead(dead, salt)
            self._publish_dead(dead)
        if stored:
            whole = not rejected and not refused_by_normaliser
            refused = self._write(buf, "raw_results", stored, whole=whole)
            if refused:  # not expected (every raw column is checked); kept all the same
                extra = self._rejected_rows(buf, refused)
                self._write_dead(extra, salt)
                dead += extra
                rejected.update(refused)
                stored = [i for i in stored if i not in refused]
        if self.verify_next:
            self._verify(buf, stored, normalised)
            self.verify_next = False
        offsets = next_offsets(buf.messages)
        self._count(buf, stored, normalised, dead)
        return offsets

    def _verify(self, buf: Buffer, stored: list[int],
                normalised: dict[int, tuple[str, int]]) -> None:
        """Count what the store holds of every stored result (its raw row, its child rows)
        and write again, under a salted token, the results of which something is missing."""
        raw = buf.batch.tables["raw_results"]
        spans = buf.batch.spans
        # results with one natural key (a result sent twice) are one row each in FINAL
        natural: dict[tuple[Any, ...], tuple[str, int]] = {}
        where: dict[int, tuple[str, tuple[Any, ...]]] = {}
        for i in stored:
            row = raw[i]
            key = tuple(row[:4])  # source, measurement_id, probe_id, timestamp (ms)
            if i in normalised:
                table, count = normalised[i]
            else:
                table, start, end = spans[i]
                if table in EXPLODE_TABLES:
                    table, count = EXPLODE_TABLES[table], buf.batch.exploded_rows[start]
                else:
                    count = end - start
            full = (*key, row[_RAW_TYPE], row[_RAW_DESTINATION])
            natural[full] = (table, max(count, natural.get(full, (table, 0))[1]))
            where[i] = (table, key)
        want: dict[str, Counter[tuple[Any, ...]]] = {}
        for full, (table, count) in natural.items():
            want.setdefault("raw_results", Counter())[full[:4]] += 1
            want.setdefault(table, Counter())[full[:4]] += count
        have = {table: self._stored_counts(table, keys) for table, keys in want.items()}
        short = {table: {key for key, n in keys.items() if have[table][key] < n}
                 for table, keys in want.items()}
        missing = [i for i in stored if where[i][1] in short["raw_results"]
                   or where[i][1] in short[where[i][0]]]
        if not missing:
            return
        log.warning("%d of %d results of this batch were not all in the store after their "
                    "inserts (an earlier insert failed with an unknown outcome); writing them "
                    "again", len(missing), len(stored))
        salt = f"verify-{secrets.token_hex(8)}"  # never a token an earlier check used
        again = set(missing)
        for table in WRITE_ORDER:
            mine = [i for i in missing if i not in normalised and spans[i][0] == table]
            if mine:
                self._insert(table, self._rows(buf, table, mine), self._token(buf, mine, salt))
        fallback = RowBatch()
        redo = [i for i in missing if i in normalised]
        for i in redo:
            message, source = buf.results[i]
            normalize_into(orjson.loads(message.value), fallback, source=source,
                           payload=message.value)
        for table in CHILD_TABLES:
            mine = [position for position, span in enumerate(fallback.spans) if span[0] == table]
            if mine:
                rows = [row for p in mine for row in
                        fallback.tables[table][fallback.spans[p][1]:fallback.spans[p][2]]]
                self._insert(table, rows, self._token(buf, [redo[p] for p in mine], salt))
        self._insert("raw_results", [raw[i] for i in stored if i in again],
                     self._token(buf, [i for i in stored if i in again], salt))

    def _stored_counts(self, table: str,
                       keys: Counter[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
        """Rows of ``table`` per (source, measurement_id, probe_id, timestamp ms) of ``keys``."""
        measurements = sorted({key[1] for key in keys})
        probes = sorted({key[2] for key in keys})
        sql = (f"SELECT source, measurement_id, probe_id, toUnixTimestamp64Milli(timestamp), "  # noqa: S608 - one of our tables
               f"count() FROM {table} FINAL WHERE measurement_id IN {{m:Array(UInt64)}} "
               f"AND probe_id IN {{p:Array(UInt64)}} "
               f"GROUP BY source, measurement_id, probe_id, timestamp")
        result = self.storage.query(sql, {"m": measurements, "p": probes})
        found: Counter[tuple[Any, ...]] = Counter()
        for source, msm, prb, ts, count in result.rows:
            key = (source, int(msm), int(prb), int(ts))
            if key in keys:
                found[key] += int(count)
        return found

    def _normalise_refused(
        self, buf: Buffer, refused: dict[int, str], normalised: dict[int, tuple[str, int]],
        refused_by_normaliser: dict[int, tuple[Any, ...]],
    ) -> dict[int, str]:
        """Results whose exploded line ClickHouse refused, normalised here and their rows
        inserted (``normalised``: index -> (table, rows)); returns those whose rows fail
        again (index -> why). A result the normaliser refuses goes to
        ``refused_by_normaliser`` as a dead letter with the normaliser's reason."""
        fallback = RowBatch()
        mine: list[int] = []
        for i in sorted(refused):
            message, source = buf.results[i]
            try:
                normalize_into(orjson.loads(message.value), fallback, source=source,
                               payload=message.value)
            except ResultError as exc:
                refused_by_normaliser[i] = dead_letter_row(message, source, exc.reason,
                                                           exc.detail)
                continue
            mine.append(i)
        rows_of: dict[int, list[tuple[Any, ...]]] = {}
        for position, i in enumerate(mine):
            table, start, end = fallback.spans[position]
            rows_of[i] = fallback.tables[table][start:end]
            normalised[i] = (table, end - start)
            buf.batch.tables["raw_results"][i] = fallback.tables["raw_results"][position]
        failed: dict[int, str] = {}
        for table in CHILD_TABLES:
            indices = [i for i in mine if normalised[i][0] == table]
            if indices:
                failed.update(self._write_rows(buf, table, indices, rows_of))
        return failed

    def _write_rows(self, buf: Buffer, table: str, indices: list[int],
                    rows_of: dict[int, list[tuple[Any, ...]]]) -> dict[int, str]:
        """Insert the rows of ``indices`` (``rows_of``), bisecting refusals."""
        try:
            self._insert(table, [row for i in indices for row in rows_of[i]],
                         self._token(buf, indices))
            return {}
        except StorageUnavailable:
            raise
        except QueryError as exc:
            if len(indices) == 1:
                return {indices[0]: str(exc)}
            middle = len(indices) // 2
            return {**self._write_rows(buf, table, indices[:middle], rows_of),
                    **self._write_rows(buf, table, indices[middle:], rows_of)}

    def _rejected_rows(self, buf: Buffer, rejected: dict[int, str]) -> list[tuple[Any, ...]]:
        rows = []
        for i, error in sorted(rejected.items()):
            message, source = buf.results[i]
            rows.append(dead_letter_row(message, source, "insert_rejected", error))
        return rows

    def _publish_dead(self, dead: list[tuple[Any, ...]]) -> None:
        if self.bus is None:
            return
        for row in dead:
            record = dict(zip(DEAD_LETTER_COLUMNS, row, strict=True))
            payload = record["payload"]
            if len(payload) > TOPIC_DEAD_LETTER_PAYLOAD:
                record["payload"] = payload[:TOPIC_DEAD_LETTER_PAYLOAD]
                record["payload_truncated"] = True
            self.bus.publish(topics.DEAD_LETTERS, orjson.dumps(record),
                             key=str(record["topic"]).encode())
        self.bus.flush()

    def _count(self, buf: Buffer, stored: list[int], normalised: dict[int, tuple[str, int]],
               dead: list[tuple[Any, ...]]) -> None:
        batch, stats = buf.batch, self.stats
        raw = batch.tables["raw_results"]
        for (source, kind), count in Counter(
            (raw[i][_RAW_SOURCE], raw[i][_RAW_TYPE]) for i in stored
        ).items():
            RESULTS_INGESTED.labels(source, kind).inc(count)
        stats.results += len(stored)
        stats.rows["raw_results"] += len(stored)
        rows = stats.rows
        for i in stored:
            if i in normalised:
                table, count = normalised[i]
                rows[table] += count
                continue
            table, start, end = batch.spans[i]
            if table in EXPLODE_TABLES:
                rows[EXPLODE_TABLES[table]] += batch.exploded_rows[start]
            else:
                rows[table] += end - start
        for name, count in batch.nulled.items():
            VALUES_NULLED.labels(name).inc(count)
            stats.nulled[name] = stats.nulled.get(name, 0) + count
        for row in dead:
            DEAD_LETTERS.labels(row[_REASON]).inc()
            reasons = stats.dead_letter_reasons
            reasons[row[_REASON]] = reasons.get(row[_REASON], 0) + 1
        stats.dead_letters += len(dead)
        stats.flushes += 1


__all__ = [
    "CHILD_TABLES", "DEAD_LETTER_COLUMNS", "WRITE_ORDER", "HEADER_DEAD_LETTER", "HEADER_DETAIL",
    "HEADER_PAYLOAD_SHA256", "HEADER_PAYLOAD_SIZE", "MAX_DEAD_LETTER_PAYLOAD", "RESULT_TABLE",
    "Buffer", "IngestStats", "ResultSink", "content_token", "dead_letter_row",
]
