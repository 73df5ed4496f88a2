"""kill -9 of ``grenswacht ingest`` (memory bus) at five points chosen by condition: right
after the k-th insert of child rows (before their ``raw_results`` rows, the worst moment).
Guarantee (docs/architecture.md): a raw row is written only after its child rows, so after
any kill every stored raw row is complete; the memory bus keeps nothing across processes,
so the interrupted command is run again, and the store then holds exactly the input —
FINAL counts equal the distinct results and reply rows the normaliser makes of it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from grenswacht.files import read_results
from schemas.errors import ResultError
from schemas.normalize import TRACEROUTE_COLUMNS, RowBatch, normalize_into

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "atlas"
FILES = [FIXTURES / "bulk_samples" / "menog_ae.jsonl.gz",
         FIXTURES / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl",
         FIXTURES / "dns" / "sagan_tests.jsonl", FIXTURES / "ping" / "sagan_tests.jsonl"]
HOP_KEY = [TRACEROUTE_COLUMNS.index(c) for c in (
    "source", "measurement_id", "probe_id", "timestamp", "destination_address", "hop",
    "reply_index")]  # ORDER BY of traceroute_hops (schemas/clickhouse/002_*.sql)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(ROOT), "GRENSWACHT_DATA_DIR": str(tmp_path / "data"),
                "GRENSWACHT_INGEST__BATCH_SIZE": "40"})
    return env


def _expected() -> dict[str, int]:
    batch = RowBatch()
    for path in FILES:
        for record in read_results(path):
            try:
                normalize_into(orjson.loads(record.value), batch, source="file",
                               payload=record.value)
            except (ResultError, orjson.JSONDecodeError):
                pass
    raw = {(r[0], r[4], r[1], r[2], r[3], r[5]) for r in batch.tables["raw_results"]}
    hops = {tuple(row[i] for i in HOP_KEY) for row in batch.tables["traceroute_hops"]}
    return {"results": len(raw), "hops": len(hops)}


def _sql(env: dict[str, str], dsn: str, query: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "grenswacht.cli", "sql", "--storage", dsn,
                           "-f", "json", query], capture_output=True, check=True, env=env,
                          cwd=ROOT, timeout=180)
    rows: list[dict[str, Any]] = orjson.loads(done.stdout)
    return rows


def _incomplete(env: dict[str, str], dsn: str) -> int:
    """Raw traceroute rows whose reply rows are missing (must always be 0)."""
    [row] = _sql(env, dsn, "SELECT count() AS n FROM raw_results WHERE result_type = "
                           "'traceroute' AND (source, measurement_id, probe_id, timestamp) NOT "
                           "IN (SELECT source, measurement_id, probe_id, timestamp FROM "
                           "traceroute_hops)")
    return int(row["n"])


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_kill_9_grenswacht_ingest_five_times_then_converges(tmp_path: Path) -> None:
    env = _env(tmp_path)
    dsn = f"chdb://{tmp_path / 'chdb'}"
    command = [sys.executable, "-m", "grenswacht.cli", "-vv", "ingest", *map(str, FILES),
               "--storage", dsn]
    rng = random.Random(1212)  # noqa: S311 - kill points only
    kills = []
    for _ in range(5):
        target = rng.randint(1, 8)  # the k-th insert of reply rows of this run
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env=env, cwd=ROOT)
        assert process.stderr is not None
        seen = 0
        for line in process.stderr:
            if b"rows into traceroute_hops" in line:
                seen += 1
                if seen == target:
                    process.send_signal(signal.SIGKILL)
                    break
        process.wait(300)
        process.stderr.close()
        kills.append((target, seen, process.returncode))
        assert _incomplete(env, dsn) == 0  # no raw row without its reply rows, ever
    final = subprocess.run(command, capture_output=True, env=env, cwd=ROOT, timeout=1800)
    assert final.returncode == 0, final.stderr[-3000:]
    expected = _expected()
    [raw] = _sql(env, dsn, "SELECT count() AS n FROM raw_results FINAL")
    [hops] = _sql(env, dsn, "SELECT count() AS n FROM traceroute_hops FINAL")
    assert int(raw["n"]) == expected["results"], kills
    assert int(hops["n"]) == expected["hops"], kills
    assert any(code == -signal.SIGKILL for _, _, code in kills)
    print(f"kill -9 after the k-th child insert {kills}; then {expected}")  # noqa: T201
