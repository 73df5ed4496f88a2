"""``ROWS_VERSION`` is part of every insert deduplication token: when the rows made of a
payload change, it must change too, or a replay of fixed rows would be dropped as a
duplicate of the old ones. This test holds the digest of the fixtures' rows per version:
if it fails, bump ``schemas.normalize.ROWS_VERSION`` and record the new digest here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from schemas.errors import ResultError
from schemas.normalize import ROWS_VERSION, TABLE_COLUMNS, RowBatch, normalize_into

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
FOLDERS = ("traceroute", "dns", "ping", "malformed")
"""A fixed set of fixtures (new fixture folders elsewhere must not look like new rows)."""
DIGESTS = {2: "0e4b14e042f9bd4c33ce936c916546c06013483d67377babf453b37388d00c8d"}


def rows_digest() -> str:
    batch = RowBatch()
    for path in sorted(p for folder in FOLDERS for p in (FIXTURES / folder).glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                normalize_into(orjson.loads(line), batch, source="file", payload=line)
            except (ResultError, orjson.JSONDecodeError):
                continue
    tables = {table: batch.tables[table] for table in TABLE_COLUMNS}  # the normaliser's rows
    stored_as = orjson.dumps(tables, default=lambda raw: raw.decode())  # bytes: as text
    return hashlib.sha256(stored_as).hexdigest()


def test_rows_version_names_the_rows_it_makes() -> None:
    assert DIGESTS.get(ROWS_VERSION) == rows_digest(), (
        "the rows changed: bump ROWS_VERSION and record the new digest")
