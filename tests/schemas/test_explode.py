"""Differential test: the rows ClickHouse makes of a traceroute (``traceroute_input`` and its
view ``traceroute_explode``, schemas/clickhouse/050_traceroute_explode.sql) against the rows
of the normaliser (schemas/normalize.py), row for row and column for column, on every result
of the corpus: the fixtures here and, marked slow, every file of ../shared/data/atlas
(bulk, traceroute, dns, ping, malformed: every firmware generation, 4460 … 5080, API v1 era
fields included). A result that schemas/explode.py does not pass to ClickHouse is normalised
in Python as before; the test counts those too and asserts the fast path is the rule.

On the same rows it checks what the analysis reads: one row per result with its replies as
an array (``consumers.graph.window.read_path_rows``) builds exactly the paths and traces of
one row per reply (issue 17: Python builds the per-path graph from compact per-path arrays)."""

from __future__ import annotations

import datetime as dt
import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.enrich.paths import paths_from_rows
from consumers.graph.build import traces_from_rows
from consumers.graph.window import read_path_rows
from consumers.storage import Storage
from schemas.errors import ResultError, RowsRejected
from schemas.explode import INPUT_FORMAT, INPUT_SETTINGS, INPUT_TABLE, explode_into
from schemas.normalize import (
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    TRACEROUTE_COLUMNS,
    RowBatch,
    normalize_into,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
KEY = [TRACEROUTE_COLUMNS.index(c) for c in (
    "measurement_id", "probe_id", "timestamp", "destination_address", "hop", "reply_index")]
CHUNK = 5000


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        for line in handle:
            if line.strip():
                yield line.rstrip(b"\r\n")


def _stored(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row read back, in the normaliser's terms (DateTime64 -> epoch milliseconds)."""
    values = list(row)
    moment = values[3]
    if isinstance(moment, dt.datetime):
        values[3] = round(moment.replace(tzinfo=moment.tzinfo or dt.UTC).timestamp() * 1000)
    return tuple(values)


def _compare(storage: Storage, lines: list[bytes]) -> dict[str, int]:
    exploded, expected = RowBatch(), RowBatch()
    counts = {"exploded": 0, "python": 0, "refused": 0, "rows": 0, "paths": 0}
    for line in lines:
        try:
            result = orjson.loads(line)
        except orjson.JSONDecodeError:
            counts["refused"] += 1
            continue
        if explode_into(result, exploded, source="diff", payload=line):
            counts["exploded"] += 1
            normalize_into(result, expected, source="diff", payload=line)
            continue
        try:  # the Python path: must still be what the normaliser says
            normalize_into(result, RowBatch(), source="diff", payload=line)
            counts["python"] += 1
        except ResultError:
            counts["refused"] += 1
    if not counts["exploded"]:
        return counts
    assert exploded.tables["raw_results"] == expected.tables["raw_results"]
    assert sum(exploded.exploded_rows) == expected.rows("traceroute_hops")
    storage.command("TRUNCATE TABLE traceroute_hops")
    storage.insert_lines(INPUT_TABLE, [row[0] for row in exploded.tables[INPUT_TABLE]],
                         fmt=INPUT_FORMAT, settings=INPUT_SETTINGS)
    got = sorted((_stored(row) for row in storage.query(
        f"SELECT {', '.join(TRACEROUTE_COLUMNS)} FROM traceroute_hops").rows),  # noqa: S608
        key=lambda row: [row[i] for i in KEY])
    want = sorted(expected.tables["traceroute_hops"], key=lambda row: [row[i] for i in KEY])
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        if mine != theirs:  # name the columns that differ, not 29 values
            differ = {name: (a, b) for name, a, b in zip(TRACEROUTE_COLUMNS, mine, theirs,
                                                           strict=True) if a != b}
            raise AssertionError(f"row {[theirs[i] for i in KEY]}: clickhouse, normaliser: "
                                 f"{differ}")
    counts["rows"] = len(got)
    counts["paths"] = _same_paths(storage)
    return counts


_PER_REPLY_SQL = """
SELECT source, measurement_id, probe_id, timestamp, vantage_point, destination_address,
       destination_name, probe_public_address, paris_id, hop, reply_address, is_timeout, rtt_ms
FROM traceroute_hops FINAL
ORDER BY source, measurement_id, probe_id, timestamp, destination_address, hop, reply_index
"""


def _same_paths(storage: Storage) -> int:
    """Paths and traces from one row per result equal those from one row per reply (in
    the table's order), field for field and in the same order of hops and addresses."""
    per_reply = storage.query(_PER_REPLY_SQL).as_dicts()
    start = dt.datetime.fromtimestamp(MIN_TIMESTAMP, dt.UTC)
    end = dt.datetime.fromtimestamp(MAX_TIMESTAMP, dt.UTC) + dt.timedelta(seconds=1)
    per_result = read_path_rows(storage, start, end)[0]
    assert sum(len(row["replies"]) for row in per_result) == len(per_reply)
    want, got = paths_from_rows(per_reply), paths_from_rows(per_result)
    assert sorted(p.key for p in got) == sorted(p.key for p in want)
    mine = {p.key: p for p in got}
    for path in want:
        other = mine[path.key]
        assert other == path, path.key
        assert [list(other.hops), list(other.slowest), list(other.timeouts)] == [
            list(path.hops), list(path.slowest), list(path.timeouts)], path.key
    traces = {(t.key, t.paris_id): t for t in traces_from_rows(per_result)}
    expected = traces_from_rows(per_reply)
    assert len(traces) == len(expected)
    for trace in expected:
        assert traces[(trace.key, trace.paris_id)] == trace, trace.key
    return len(want)


def _check(storage: Storage, path: Path) -> dict[str, int]:
    totals = {"exploded": 0, "python": 0, "refused": 0, "rows": 0, "paths": 0}
    chunk: list[bytes] = []
    for line in [*_lines(path), b""]:
        if line:
            chunk.append(line)
        if len(chunk) >= CHUNK or (not line and chunk):
            for name, value in _compare(storage, chunk).items():
                totals[name] += value
            chunk = []
    return totals


FIXTURE_FILES = sorted(p for folder in ("traceroute", "bulk_samples", "malformed")
                       for p in (FIXTURES / folder).glob("*.jsonl*"))


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_traceroutes_explode_to_the_normalisers_rows(storage: Storage,
                                                             path: Path) -> None:
    counts = _check(storage, path)
    if "traceroute" in path.name or path.parent.name == "traceroute":
        assert counts["exploded"] > 0 and counts["exploded"] >= 10 * counts["python"], counts


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_the_whole_corpus_explodes_to_the_normalisers_rows(storage: Storage,
                                                           shared_atlas: Path) -> None:
    files = sorted(p for p in shared_atlas.rglob("*.jsonl*") if "abuf" not in p.parts[-2])
    assert any("bulk" in p.parts for p in files)
    totals = {"exploded": 0, "python": 0, "refused": 0, "rows": 0, "paths": 0}
    for path in files:
        try:
            counts = _check(storage, path)
        except AssertionError as exc:
            raise AssertionError(f"{path.relative_to(shared_atlas)}: {exc}") from exc
        for name, value in counts.items():
            totals[name] += value
    # ~100,600 traceroutes, ~3.7 M reply rows; a handful take the Python path (a numeric
    # ICMP error code, …); DNS and ping results are normalised in Python by design
    assert totals["exploded"] > 100_000 and totals["rows"] > 3_000_000, totals
    print(f"explode vs normaliser over the corpus: {totals}")  # noqa: T201


def test_hostile_lines_explode_to_the_normalisers_rows(storage: Storage) -> None:
    """The hostile lines of tests/hostile.py (type flips, numeric extremes, duplicate keys,
    structural damage, … derived from real results): whatever schemas/explode.py passes to
    ClickHouse gives the normaliser's rows; a line ClickHouse refuses (a duplicate key)
    is one the sink normalises in Python instead (tests/consumers/test_ingest_integrity)."""
    from tests.hostile import cases

    count = int(os.environ.get("GRENSWACHT_HOSTILE_CASES", "600"))
    lines = [line for _, line in cases(count) if b"\n" not in line]
    exploded = RowBatch()
    accepted = []
    for line in lines:
        try:
            result = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if explode_into(result, exploded, source="diff", payload=line):
            accepted.append(line)
    refused = 0
    kept = []
    for line in accepted:  # one at a time: ClickHouse refuses some (duplicate keys)
        storage.command("TRUNCATE TABLE traceroute_hops")
        one = RowBatch()
        explode_into(orjson.loads(line), one, source="diff", payload=line)
        try:
            storage.insert_lines(INPUT_TABLE, [one.tables[INPUT_TABLE][0][0]],
                                 fmt=INPUT_FORMAT, settings=INPUT_SETTINGS)
        except RowsRejected:
            refused += 1
            continue
        kept.append(line)
    assert kept and refused < len(accepted) // 2, (len(kept), refused)
    counts = _compare(storage, kept)
    assert counts["exploded"] == len(kept)
    print(f"hostile: {len(lines)} lines, {len(accepted)} passed to ClickHouse, "  # noqa: T201
          f"{refused} refused by it, {counts['rows']} rows equal")


REGULAR = (b'{"type":"traceroute","fw":5020,"msm_id":5001,"prb_id":6001,"timestamp":1600000000,'
           b'"af":4,"proto":"ICMP","paris_id":1,"dst_addr":"192.0.2.1","dst_name":"example.nl",'
           b'"src_addr":"10.0.0.2","from":"198.51.100.7","result":[{"hop":1,"result":[{"from":'
           b'"10.0.0.1","rtt":1.5,"size":28,"ttl":64},{"x":"*"}]},{"hop":2,"result":[{"from":'
           b'"192.0.2.1","rtt":9.25,"size":28,"ttl":60,"icmpext":{"version":2,"rfc4884":0,'
           b'"obj":[{"class":1,"type":1,"mpls":[{"label":16005,"exp":0,"s":1,"ttl":1}]}]}}]},'
           b'{"error":"connect failed"}]}')


@pytest.mark.parametrize(("change", "exploded"), [
    ((b"", b""), True),
    ((b'"ttl":64}', b'"ttl":64.0}'), False),  # a float TTL: the normaliser takes it as 64
    ((b'"size":28,"ttl":60', b'"size":1099511627776,"ttl":60'), False),  # nulled, noted
    ((b'{"x":"*"}', b'{"x":"*","size":5}'), False),  # "*": the normaliser ignores the rest
    ((b'"ttl":60,', b'"ttl":60,"err":7,'), False),  # a numeric ICMP error: str(7)
    ((b'"version":2,"rfc4884":0', b'"version": 2,"rfc4884":0'), False),  # not orjson's text
    ((b'"label":16005', b'"label":-1'), False),  # not a UInt32: left out, noted
    ((b'{"hop":2,', b'{"hop":1,'), False),  # a hop twice: the normaliser refuses it
    ((b'"fw":5020', b'"fw":"5020"'), True),  # the envelope is the normaliser's own
    ((b'"ttl":60,', b'"ttl":60,"dup":true,"late":2,"ittl":3,"mtu":1500,"edst":"x",'), True),
])
def test_what_clickhouse_is_given_and_what_stays_in_python(
        storage: Storage, change: tuple[bytes, bytes], exploded: bool) -> None:
    line = REGULAR.replace(*change)
    assert line != REGULAR or not change[0]
    assert explode_into(orjson.loads(line), RowBatch(), source="diff", payload=line) is exploded
    counts = _compare(storage, [line])
    assert counts["exploded" if exploded else "python"] + counts["refused"] == 1
