"""Hostile input derived from real results (tests/hostile.py) through the real ingest: the
file reader, the memory bus, the ingest consumer and chDB. 0 crashes, 0 hangs (the test's
timeout bounds every case), every input stored or dead-lettered, 0 partial rows.

``GRENSWACHT_HOSTILE_CASES`` sets the number of line cases (default 300, for CI; the
figures in docs/data-model.md come from a local run of 5,000).
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from consumers.ingest import IngestConsumer
from consumers.storage import Storage
from grenswacht.files import read_results
from schemas import topics
from schemas.bus import open_bus
from tests.hostile import cases

CASES = int(os.environ.get("GRENSWACHT_HOSTILE_CASES", "300"))


def _bombs(folder: Path) -> list[Path]:
    zeros = b"\0" * (1 << 20)
    made = []
    for name, newline in (("zeros.jsonl.gz", False), ("zero-lines.jsonl.gz", True)):
        path = folder / name
        with gzip.open(path, "wb", compresslevel=9) as out:
            for _ in range(300):
                out.write(zeros + (b"\n" if newline else b""))
        made.append(path)
    return made


@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_hostile_cases_end_stored_or_dead_lettered_without_partial_rows(
    storage: Storage, tmp_path: Path
) -> None:
    generated = list(cases(CASES))
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(line for _, line in generated) + b"\n")
    bombs = _bombs(tmp_path)
    bus = open_bus("memory://hostile")
    consumer = IngestConsumer(bus, storage, group="hostile", batch_size=500)
    started = time.monotonic()
    records = 0
    for source in (path, *bombs):
        for record in read_results(source):
            bus.publish(topics.RESULTS, record.value, key=record.key, headers=record.headers)
            records += 1
            if records % 500 == 0:
                consumer.drain(idle_timeout=0)
    consumer.drain(idle_timeout=0)
    elapsed = time.monotonic() - started
    stats = consumer.stats
    # every input line is one record; each bomb ends in one dead letter (what came before,
    # if anything, is kept)
    assert records >= CASES + len(bombs)
    assert stats.results + stats.dead_letters == records
    assert "normalize_failed" not in stats.dead_letter_reasons  # no unexpected exception
    assert "insert_rejected" not in stats.dead_letter_reasons  # the limits caught them all
    stored_dead = int(storage.query("SELECT count() FROM dead_letters").rows[0][0])
    assert stored_dead == stats.dead_letters
    # 0 partial rows: every child row has its raw row, every DNS/ping raw row its children
    for table in ("traceroute_hops", "dns_answers", "ping_results"):
        orphans = storage.query(
            f"SELECT count() FROM {table} WHERE (source, measurement_id, probe_id, "  # noqa: S608
            "timestamp) NOT IN (SELECT source, measurement_id, probe_id, timestamp FROM "
            "raw_results)").rows[0][0]
        assert orphans == 0, table
    childless = storage.query(
        "SELECT count() FROM raw_results WHERE result_type IN ('dns', 'ping') AND "
        "(source, measurement_id, probe_id, timestamp) NOT IN (SELECT source, "
        "measurement_id, probe_id, timestamp FROM dns_answers UNION ALL SELECT source, "
        "measurement_id, probe_id, timestamp FROM ping_results)").rows[0][0]
    assert childless == 0
    outcome: dict[str, Counter[str]] = defaultdict(Counter)
    reasons = dict(storage.query(
        "SELECT origin, reason FROM dead_letters WHERE origin LIKE {p:String}",
        {"p": f"{path}:%"}).rows)
    nulled = {row[0] for row in storage.query(
        "SELECT measurement_id FROM raw_results WHERE length(notes) > 0").rows}
    for number, (family, _) in enumerate(generated):
        why = reasons.get(f"{path}:{number + 1}")
        outcome[family]["dead: " + why if why else
                        "stored, nulled" if 900_000_000 + number in nulled else "stored"] += 1
    bomb_reasons = storage.query("SELECT reason FROM dead_letters WHERE origin NOT LIKE "
                                 "{p:String} ORDER BY reason", {"p": f"{path}:%"}).rows
    assert ("gzip_bomb",) in bomb_reasons
    print(json.dumps({"cases": CASES, "bombs": len(bombs), "seconds": round(elapsed, 1),  # noqa: T201
                      "results": stats.results, "dead_letters": stats.dead_letters,
                      "bomb_dead_letters": [r[0] for r in bomb_reasons],
                      "by_family": {k: dict(v) for k, v in sorted(outcome.items())}},
                     indent=1))
