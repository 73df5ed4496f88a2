"""Nothing lost, nothing doubled, nothing hung (issue 12), on the real fixture files and the
real chDB engine: many pieces ingested one command at a time == one ingest == the distinct
results of the input; every hostile case ends, stores the good results and dead-letters the
bad one with a reason."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.ingest import IngestConsumer
from consumers.storage import Storage
from grenswacht.cli import app as cli_app
from grenswacht.files import ReadLimits, read_results
from schemas import topics
from schemas.bus import open_bus
from schemas.errors import InputError, ResultError
from schemas.normalize import TRACEROUTE_COLUMNS, RowBatch, normalize_into

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
RESULT_FILES = sorted(
    p for folder in ("traceroute", "dns", "ping", "bulk_samples")
    for p in (FIXTURES / folder).iterdir() if p.name.endswith((".jsonl", ".jsonl.gz"))
)
TABLES = ("raw_results", "traceroute_hops", "dns_answers", "ping_results", "dead_letters")
SAGAN = FIXTURES / "traceroute" / "sagan_tests.jsonl"
TRACEROUTE_SIZE = TRACEROUTE_COLUMNS.index("size")


def lines_of(path: Path) -> list[bytes]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [line for line in data.splitlines() if line.strip()]


def expected_keys(lines: list[bytes]) -> set[tuple[Any, ...]]:
    """The natural keys of raw_results that a perfect ingest of ``lines`` stores."""
    batch = RowBatch()
    for line in lines:
        try:
            normalize_into(orjson.loads(line), batch, source="file", payload=line)
        except (ResultError, orjson.JSONDecodeError):
            continue
    return {(r[0], r[4], r[1], r[2], r[3], r[5]) for r in batch.tables["raw_results"]}


def counts(storage: Storage) -> dict[str, int]:
    return {t: int(storage.query(f"SELECT count() FROM {t} FINAL").rows[0][0])  # noqa: S608
            for t in TABLES}


def truncate(storage: Storage) -> None:
    for table in TABLES:
        storage.command(f"TRUNCATE TABLE {table}")


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("GRENSWACHT_DATA_DIR", str(tmp_path / "data"))  # no running endpoint
    yield CliRunner()


def ingest_cli(cli: CliRunner, dsn: str, *paths: Path) -> dict[str, Any]:
    done = cli.invoke(cli_app, ["ingest", *map(str, paths), "--storage", dsn, "-f", "json"])
    assert done.exit_code == 0, done.output
    start = done.stdout.index("[")
    (row,) = json.loads(done.stdout[start:])
    return dict(row)


def test_pieces_one_command_at_a_time_equal_one_ingest_equal_the_distinct_results(
    storage: Storage, chdb_dsn: str, cli: CliRunner, tmp_path: Path
) -> None:
    lines = [line for path in RESULT_FILES for line in lines_of(path)]
    keys = expected_keys(lines)
    assert len(lines) > 600 and len(keys) > 500
    pieces = []
    size = 20  # equal-sized pieces, each its own `grenswacht ingest` (offsets restart at 0)
    for number, start in enumerate(range(0, len(lines), size)):
        piece = tmp_path / f"piece-{number:03d}.jsonl"
        piece.write_bytes(b"\n".join(lines[start:start + size]) + b"\n")
        pieces.append(piece)
    for piece in pieces:
        ingest_cli(cli, chdb_dsn, piece)
    in_pieces = counts(storage)
    truncate(storage)
    ingest_cli(cli, chdb_dsn, *RESULT_FILES)
    at_once = counts(storage)
    assert in_pieces["raw_results"] == len(keys)
    assert at_once == in_pieces
    again = ingest_cli(cli, chdb_dsn, *RESULT_FILES)  # a re-ingest adds nothing
    assert again["results"] == len(lines) - at_once["dead_letters"]
    assert counts(storage) == at_once


@pytest.mark.kafka
def test_pieces_through_kafka_equal_one_ingest(
    storage: Storage, chdb_dsn: str, cli: CliRunner, kafka_broker: str
) -> None:
    lines = [line for path in RESULT_FILES[:6] for line in lines_of(path)]
    url = f"kafka://{kafka_broker}"
    group = f"integrity-{os.getpid()}-{hashlib.sha256(str(id(lines)).encode()).hexdigest()[:6]}"
    for start in range(0, len(lines), 40):
        producer = open_bus(url)
        for line in lines[start:start + 40]:
            producer.publish(topics.RESULTS, line, headers=[(topics.HEADER_SOURCE, b"file")])
        producer.close()
        consumer = IngestConsumer(open_bus(url), storage, group=group, batch_size=25)
        while consumer.stats.results + consumer.stats.dead_letters < min(40, len(lines) - start):
            consumer.poll_once(timeout=1.0)
        consumer.flush_and_commit()
        consumer.bus.close()
    through_kafka = counts(storage)
    truncate(storage)
    bus = open_bus("memory://integrity-kafka-reference")
    for line in lines:
        bus.publish(topics.RESULTS, line, headers=[(topics.HEADER_SOURCE, b"file")])
    IngestConsumer(bus, storage, group="reference").drain(idle_timeout=0)
    assert counts(storage) == through_kafka
    assert through_kafka["raw_results"] == len(expected_keys(lines))


def _sagan_lines() -> list[bytes]:
    return SAGAN.read_bytes().splitlines()


def _hostile(mutate: Any) -> bytes:
    result = orjson.loads(_sagan_lines()[0])
    mutate(result)
    return orjson.dumps(result)


def _reply(result: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = result["result"][0]["result"][0]
    return reply


KILLERS: dict[str, tuple[bytes, str | None]] = {
    # (line, dead-letter reason; None: stored with the value nulled and the reason noted)
    "reply size 2^40": (_hostile(lambda r: _reply(r).__setitem__("size", 2**40)), None),
    "reply size 2^32": (_hostile(lambda r: _reply(r).__setitem__("size", 2**32)), None),
    "mpls label -1": (_hostile(lambda r: _reply(r).__setitem__(
        "icmpext", {"version": 2, "obj": [{"class": 1, "mpls": [{"label": -1, "s": 1}]}]})),
        None),
    "mpls label 2^32": (_hostile(lambda r: _reply(r).__setitem__(
        "icmpext", {"obj": [{"mpls": [{"label": 2**32}]}]})), None),
    "300 replies in a hop": (_hostile(lambda r: r["result"][0].__setitem__(
        "result", [{"x": "*"}] * 300)), "out_of_range"),
    "numeric reply from": (_hostile(lambda r: _reply(r).__setitem__("from", 3232235777)),
                           "bad_value"),
    "year 9999": (_hostile(lambda r: r.__setitem__("timestamp", 253_402_300_799)),
                  "out_of_range"),
    "DNS resultset of 65,537": (orjson.dumps({
        "type": "dns", "msm_id": 5, "prb_id": 6, "timestamp": 1_400_000_000, "fw": 4700,
        "resultset": [{"error": 1}] * 65_537}), "out_of_range"),
}


@pytest.mark.parametrize("case", sorted(KILLERS))
def test_each_killer_ends_stores_the_rest_and_explains_itself(
    storage: Storage, chdb_dsn: str, cli: CliRunner, tmp_path: Path, case: str
) -> None:
    line, reason = KILLERS[case]
    good = _sagan_lines()[1:6]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([good[0], good[1], line, *good[2:]]) + b"\n")
    stats = ingest_cli(cli, chdb_dsn, path)
    total = counts(storage)
    if reason is None:
        assert stats["results"] == 6 and total["dead_letters"] == 0
        notes = storage.query("SELECT notes FROM raw_results WHERE length(notes) > 0").rows
        assert len(notes) == 1
        assert "outside" in notes[0][0][0] or "not a UInt32" in notes[0][0][0]
    else:
        assert stats["results"] == 5
        (got,) = storage.query("SELECT reason, origin, detail FROM dead_letters").rows
        assert got[0] == reason and got[1] == f"{path}:3" and got[2]
    assert total["raw_results"] == stats["results"]


def test_a_dead_letter_over_1_mb_is_stored_and_published(
    storage: Storage, tmp_path: Path
) -> None:
    huge = b'{"type": "traceroute", "dst_name": "' + b"\\u0000" * 400_000 + b'"}'
    bus = open_bus("memory://integrity-big-dlq")
    watcher = open_bus("memory://integrity-big-dlq")
    watcher.subscribe([topics.DEAD_LETTERS], "watch")
    bus.publish(topics.RESULTS, huge[:999_000], headers=[(topics.HEADER_SOURCE, b"t")])
    consumer = IngestConsumer(bus, storage, group="big")
    consumer.drain(idle_timeout=0)
    assert consumer.stats.dead_letters == 1
    (message,) = watcher.poll(timeout=5)
    assert len(message.value) <= topics.MAX_MESSAGE_BYTES
    assert orjson.loads(message.value)["payload_truncated"] is True


def test_a_cut_off_first_line_keeps_every_other_line(
    storage: Storage, chdb_dsn: str, cli: CliRunner, tmp_path: Path
) -> None:
    good = _sagan_lines()
    path = tmp_path / "cut.jsonl"
    path.write_bytes(good[0][len(good[0]) // 2:] + b"\n" + b"\n".join(good[1:]) + b"\n")
    stats = ingest_cli(cli, chdb_dsn, path)
    assert stats["results"] == len(good) - 1
    (got,) = storage.query("SELECT reason, origin FROM dead_letters").rows
    assert got == ("invalid_json", f"{path}:1")
    # a broken line anywhere costs only itself: also in a gzipped file, and in the middle
    middle = tmp_path / "middle.jsonl.gz"
    middle.write_bytes(gzip.compress(b"\n".join([*good[:3], b"{broken", *good[3:]]) + b"\n"))
    assert [r.value for r in read_results(middle)] == [*good[:3], b"{broken", *good[3:]]


def test_a_huge_line_is_a_dead_letter_with_its_size_hash_and_first_bytes(
    storage: Storage, tmp_path: Path
) -> None:
    huge = b'{"type":"traceroute","x":"' + b"y" * 5_000_000 + b'"}'
    path = tmp_path / "huge.jsonl"
    good = _sagan_lines()
    path.write_bytes(good[0] + b"\n" + huge + b"\n" + good[1] + b"\n")
    records = list(read_results(path, ReadLimits(max_line_bytes=100_000)))
    assert len(records) == 3
    headers = dict(records[1].headers)
    assert headers["gw-dead-letter"] == b"oversized"
    assert headers["gw-payload-size"] == str(len(huge)).encode()
    assert headers["gw-payload-sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert records[1].value == huge[:64 * 1024]


def test_a_gzip_bomb_is_a_dead_letter_and_what_came_before_is_kept(tmp_path: Path) -> None:
    good = _sagan_lines()
    bomb = tmp_path / "bomb.jsonl.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b"\n".join(good) + b"\n")
        zeros = b"\0" * (1 << 20)
        for _ in range(300):  # 300 MiB of zeros in ~300 KB
            out.write(zeros)
    records = list(read_results(bomb, ReadLimits(max_gzip_ratio=100)))
    stored = [r for r in records if "gw-dead-letter" not in dict(r.headers)]
    assert len(stored) == len(good)
    reason = dict(records[-1].headers)["gw-dead-letter"]
    assert reason == b"gzip_bomb"
    capped = list(read_results(bomb, ReadLimits(max_file_bytes=50_000_000)))
    assert dict(capped[-1].headers)["gw-dead-letter"] == b"input_too_large"


def test_devices_are_refused_and_pipes_are_read(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="character device"):
        next(read_results(Path("/dev/zero")))
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    good = _sagan_lines()
    pid = os.fork()
    if pid == 0:  # the writer end of the pipe
        try:
            with fifo.open("wb") as out:
                out.write(b"\n".join(good) + b"\n")
        finally:
            os._exit(0)
    try:
        assert len(list(read_results(fifo))) == len(good)
    finally:
        os.waitpid(pid, 0)


def _sink_messages(bus_name: str, lines: list[bytes]) -> tuple[Any, list[Any]]:
    bus = open_bus(f"memory://{bus_name}")
    for line in lines:
        bus.publish(topics.RESULTS, line, headers=[(topics.HEADER_SOURCE, b"file")])
    reader = open_bus(f"memory://{bus_name}")
    reader.subscribe([topics.RESULTS], "peek")
    return bus, reader.poll(max_records=1000, timeout=1)


def test_an_insert_clickhouse_refuses_is_bisected_to_the_bad_result(storage: Storage) -> None:
    from consumers.sink import ResultSink

    lines = _sagan_lines()[:12]
    # a float TTL: valid (the normaliser takes 64.0 as 64), but not for ClickHouse's explode
    # (schemas/explode.py), so this result's rows are made in Python
    lines[7] = re.sub(rb'("size":\d+,"ttl":)(\d+)', rb'\1\2.0', lines[7], count=1)
    _, messages = _sink_messages("integrity-bisect", lines)
    sink = ResultSink(storage)
    for message in messages:
        sink.add(message)
    # a value past the normaliser's checks (as a bug there would let through)
    index = [message.value for message, _ in sink.results].index(lines[7])
    table, start, _ = sink.batch.spans[index]
    assert table == "traceroute_hops" and sink.batch.spans[0][0] == "traceroute_input"
    sink_value = sink.results[index][0].value
    rows = sink.batch.tables[table]
    size = TRACEROUTE_SIZE
    rows[start] = rows[start][:size] + (2**40,) + rows[start][size + 1:]
    sink.flush()
    assert sink.stats.results == len(lines) - 1
    (dead,) = storage.query("SELECT reason, detail FROM dead_letters").rows
    assert dead[0] == "insert_rejected" and "size" in dead[1]
    assert counts(storage)["raw_results"] == len(lines) - 1
    bad = orjson.loads(sink_value)
    orphans = storage.query(
        "SELECT count() FROM traceroute_hops WHERE measurement_id = {m:UInt64} AND probe_id = "
        "{p:UInt64} AND timestamp = toDateTime64({t:UInt64}, 3, 'UTC')",
        {"m": bad["msm_id"], "p": bad["prb_id"], "t": bad["timestamp"]}).rows[0][0]
    assert orphans == 0


def test_a_line_clickhouse_refuses_is_normalised_in_python(storage: Storage) -> None:
    """A value that slipped past schemas/explode.py's checks into an exploded line: ClickHouse
    refuses it (accurateCast), the sink isolates that result and normalises it in Python,
    so every result is stored with exactly the normaliser's rows and nothing is dead."""
    from consumers.sink import ResultSink

    lines = _sagan_lines()[:12]
    _, messages = _sink_messages("integrity-refused-line", lines)
    sink = ResultSink(storage)
    for message in messages:
        sink.add(message)
    table, start, _ = sink.batch.spans[7]
    assert table == "traceroute_input"
    bad = orjson.loads(sink.results[7][0].value)
    line = sink.batch.tables[table][start][0]
    sink.batch.tables[table][start] = (re.sub(rb'"size":\d+', b'"size":1099511627776', line,
                                              count=1),)
    sink.flush()
    assert sink.stats.results == len(lines) and sink.stats.dead_letters == 0
    expected = RowBatch()
    for line in lines:
        normalize_into(orjson.loads(line), expected, source="file", payload=line)
    assert counts(storage)["traceroute_hops"] == expected.rows("traceroute_hops")
    assert sink.stats.rows["traceroute_hops"] == expected.rows("traceroute_hops")
    sizes = storage.query(
        "SELECT groupArray(size) FROM (SELECT size FROM traceroute_hops FINAL WHERE "
        "measurement_id = {m:UInt64} AND probe_id = {p:UInt64} AND timestamp = "
        "toDateTime64({t:UInt64}, 3, 'UTC') ORDER BY hop, reply_index)",
        {"m": bad["msm_id"], "p": bad["prb_id"], "t": bad["timestamp"]}).rows[0][0]
    size = TRACEROUTE_COLUMNS.index("size")
    assert sizes == [row[size] for row in expected.tables["traceroute_hops"]
                     if row[1] == bad["msm_id"] and row[2] == bad["prb_id"]
                     and row[3] == bad["timestamp"] * 1000 and row[size] is not None]


class _Down:
    """The real store behind a switch: while ``down``, inserts fail as when the disk is
    full (the error ClickHouse gives then, mapped at the seam)."""

    def __init__(self, storage: Storage) -> None:
        self.storage, self.down = storage, True

    def _check(self) -> None:
        if self.down:
            from consumers.storage import _map_error

            raise _map_error(RuntimeError("Code: 243. DB::Exception: Cannot reserve 1.00 "
                                          "MiB, not enough space. (NOT_ENOUGH_SPACE)"), "insert")

    def insert(self, table: str, columns: Any, *, dedup_token: str | None = None) -> int:
        self._check()
        return self.storage.insert(table, columns, dedup_token=dedup_token)

    def insert_lines(self, table: str, lines: Any, **options: Any) -> int:
        self._check()
        return self.storage.insert_lines(table, lines, **options)

    def query(self, sql: str, parameters: Any = None, **options: Any) -> Any:
        self._check()
        return self.storage.query(sql, parameters, **options)


def test_backpressure_waits_shows_why_and_then_stores(storage: Storage) -> None:
    import threading

    from consumers.metrics import INGEST_WAITING

    lines = _sagan_lines()[:5]
    bus, _ = _sink_messages("integrity-down", lines)
    store = _Down(storage)
    consumer = IngestConsumer(bus, store, group="down", retry_max_s=0.2)  # type: ignore[arg-type]
    done = threading.Event()
    thread = threading.Thread(target=lambda: (consumer.drain(idle_timeout=0), done.set()))
    thread.start()
    deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
    while consumer.stats.waiting is None or consumer.stats.retries < 3:
        assert not done.is_set(), "the consumer finished while the store was down"
        assert time.monotonic() < deadline, consumer.stats.as_dict()
        time.sleep(0.05)
    waiting = consumer.stats.as_dict()["waiting"]
    assert "NOT_ENOUGH_SPACE" in waiting["reason"] and waiting["kind"] == "StorageUnavailable"
    assert INGEST_WAITING.labels("down")._value.get() == 1
    assert counts(storage)["raw_results"] == 0  # nothing stored, nothing committed
    store.down = False
    thread.join(300)
    assert done.is_set() and consumer.stats.waiting is None
    assert INGEST_WAITING.labels("down")._value.get() == 0
    assert counts(storage)["raw_results"] == len(lines)
