"""The one table of column limits is read from the DDL, and the normaliser's rows fit it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson

from schemas import normalize
from schemas.column_limits import COLUMNS, column_of
from schemas.errors import ResultError
from schemas.normalize import TABLE_COLUMNS, RowBatch, normalize_into

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"


def test_types_and_ranges_come_from_the_ddl() -> None:
    hops = COLUMNS["traceroute_hops"]
    assert (hops["size"].type, hops["size"].nullable, hops["size"].high) == (
        "Nullable(UInt32)", True, 2**32 - 1)
    assert hops["mpls_labels"].array and hops["mpls_labels"].high == 2**32 - 1
    assert hops["reply_index"].high == 255 and COLUMNS["dns_answers"]["response_index"].high \
        == 65535
    stamp = COLUMNS["raw_results"]["timestamp"]
    assert dt.datetime.fromtimestamp(stamp.low or 0, dt.UTC).year == 1900
    assert dt.datetime.fromtimestamp(stamp.high or 0, dt.UTC).year == 2299
    assert COLUMNS["raw_results"]["notes"].array  # ALTER TABLE … ADD COLUMN is read too
    assert COLUMNS["dead_letters"]["payload_sha256"].max_bytes == 64
    assert column_of("t", "c", "Int32").low == -(2**31)


def test_every_normalised_column_exists_and_the_limits_are_never_wider() -> None:
    for table, names in TABLE_COLUMNS.items():
        assert set(names) <= set(COLUMNS[table]), table
    assert normalize.MAX_REPLY_SIZE == COLUMNS["traceroute_hops"]["size"].high
    assert normalize.MIN_TIMESTAMP >= (COLUMNS["raw_results"]["timestamp"].low or 0)
    assert normalize.MAX_TIMESTAMP <= (COLUMNS["raw_results"]["timestamp"].high or 0)


def test_every_row_of_the_fixtures_fits_its_columns() -> None:
    batch = RowBatch()
    for path in sorted(FIXTURES.glob("*/*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                normalize_into(orjson.loads(line), batch, source="file", payload=line)
            except (ResultError, orjson.JSONDecodeError):
                continue
    for table in TABLE_COLUMNS:
        rows = batch.tables[table]
        columns = [COLUMNS[table][name] for name in TABLE_COLUMNS[table]]
        assert rows or table == "mda_links", table  # no MDA results among the fixtures
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                assert column.fits(value), (table, column.name, value)
