"""An insert that fails has an unknown outcome: ClickHouse may have recorded its token
without its rows (seen with a full disk: 23,733 hop rows of 748,734 lost in a CI run of
tests/kafka/test_faults.py). Modelled here on the real engine: the insert goes through, its
rows are deleted again (the token stays in the deduplication log), and it raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumers.ingest import IngestConsumer
from consumers.sink import ResultSink
from consumers.storage import Storage
from grenswacht.files import read_results
from schemas import topics
from schemas.bus import Message, open_bus
from schemas.errors import StorageUnavailable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
TRACEROUTES = FIXTURES / "traceroute" / "sagan_tests.jsonl"
DNS = sorted((FIXTURES / "dns").glob("*.json*"))[:2]


def hops(storage: Storage) -> int:
    return int(storage.query("SELECT count() FROM traceroute_hops FINAL").rows[0][0])


def raws(storage: Storage) -> int:
    return int(storage.query("SELECT count() FROM raw_results FINAL").rows[0][0])


def lose_rows(storage: Storage) -> None:
    """Rows gone, tokens kept (what a part that failed after its token was logged leaves)."""
    for table in ("traceroute_hops", "dns_answers", "raw_results"):
        storage.command(f"ALTER TABLE {table} DELETE WHERE 1 SETTINGS mutations_sync = 2")


class LosesOnce:
    """The storage seam around the real store: the first insert into ``table`` goes
    through, its rows vanish and it raises backpressure."""

    def __init__(self, storage: Storage, table: str) -> None:
        self.storage, self.table, self.failed = storage, table, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def _maybe_fail(self, table: str) -> None:
        if table == self.table and not self.failed:
            self.failed = True
            lose_rows(self.storage)
            raise StorageUnavailable("disk full (modelled)", retry_after=0.0)

    def insert(self, table: str, columns: Any, **kwargs: Any) -> int:
        done = self.storage.insert(table, columns, **kwargs)
        self._maybe_fail(table)
        return done

    def insert_lines(self, table: str, lines: Any, **kwargs: Any) -> int:
        done = self.storage.insert_lines(table, lines, **kwargs)
        self._maybe_fail("traceroute_hops" if table == "traceroute_input" else table)
        return done


def messages() -> list[Message]:
    bus = open_bus("memory://unknown-outcome-source")
    for path in (TRACEROUTES, *DNS):
        for record in read_results(path):
            bus.publish(topics.RESULTS, record.value, key=record.key, headers=record.headers)
    bus.subscribe([topics.RESULTS], "unknown-outcome")
    out = bus.poll(max_records=100_000, timeout=0.1)
    bus.close()
    return out


def reference(storage: Storage, batch: list[Message]) -> tuple[int, int]:
    sink = ResultSink(storage)
    for message in batch:
        sink.add(message)
    sink.flush()
    counts = hops(storage), raws(storage)
    for table in ("traceroute_hops", "dns_answers", "raw_results"):
        storage.command(f"TRUNCATE TABLE {table}")
    return counts


def test_a_retried_write_is_not_dropped_as_a_duplicate_of_the_failed_one(
    storage: Storage,
) -> None:
    batch = messages()
    expected = reference(storage, batch)
    assert expected[0] > 500 and expected[1] == len(batch)
    for table in ("traceroute_hops", "raw_results"):
        sink = ResultSink(LosesOnce(storage, table))  # type: ignore[arg-type]
        sink.verify_next = False  # the retry alone must get it right
        for message in batch:
            sink.add(message)
        buf = sink.take()
        try:
            sink.write(buf)
        except StorageUnavailable:
            pass
        else:
            raise AssertionError("the modelled failure did not happen")
        assert buf.attempts == 1
        sink.write(buf)  # the retry, same buffer
        assert (hops(storage), raws(storage)) == expected, table
        for name in ("traceroute_hops", "dns_answers", "raw_results"):
            storage.command(f"TRUNCATE TABLE {name}")


def test_another_process_replaying_the_batch_checks_the_store(
    storage: Storage, caplog: pytest.LogCaptureFixture,
) -> None:
    batch = messages()
    expected = reference(storage, batch)
    first = ResultSink(storage)
    for message in batch:
        first.add(message)
    first.flush()
    lose_rows(storage)  # as if that write had failed after logging its tokens
    assert (hops(storage), raws(storage)) == (0, 0)
    unchecked = ResultSink(storage)
    unchecked.verify_next = False
    for message in batch:
        unchecked.add(message)
    unchecked.flush()
    assert (hops(storage), raws(storage)) == (0, 0), "the hazard: a replay is dropped"
    second = ResultSink(storage)  # a new process: its first write is checked
    for message in batch:
        second.add(message)
    second.flush()
    assert (hops(storage), raws(storage)) == expected
    assert not second.verify_next
    warned = [r for r in caplog.records if "not all in the store" in r.getMessage()]
    assert len(warned) == 1, "only the replay after the loss writes again"
    again = ResultSink(storage)  # nothing missing now: nothing doubled either
    for message in batch:
        again.add(message)
    again.flush()
    assert (hops(storage), raws(storage)) == expected


def test_a_rebalance_checks_the_next_batch(storage: Storage) -> None:
    consumer = IngestConsumer(open_bus("memory://unknown-outcome-rebalance"), storage,
                              group="unknown-outcome-rebalance")
    consumer.sink.verify_next = False
    consumer._on_revoke([])
    assert consumer.sink.verify_next
