"""Fixtures of the path-graph tests. The namespace topologies are the probe tests'
(``tests/probes/conftest.py``), re-exported here so they are built once per session."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.errors import ResultError
from schemas.normalize import RowBatch, normalize_into
from tests.probes.conftest import (  # noqa: F401 - fixtures used by the netns tests
    chain_2_2_2,
    chain_2_3,
    chain_3_2,
    chain_4_2,
    diamond2,
    diamond3,
    meshed,
    netns_ok,
    silent_hop,
    two_diamonds,
    unequal,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ATLAS = FIXTURES / "atlas"
GRAPH = FIXTURES / "graph"
EVERYTHING = (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC))


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        for line in handle:
            if line.strip():
                yield json.loads(line)


def normalized(results: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> RowBatch:
    batch = RowBatch()
    for result in results:
        try:
            normalize_into(result, batch, source="file")
        except ResultError:
            continue  # the foundation's tests cover dead letters
    return batch
