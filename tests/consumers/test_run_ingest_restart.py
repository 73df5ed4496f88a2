"""``grenswacht run``'s /ingest across a restart of ``run`` (real processes, memory bus,
chDB): pieces sent one ``grenswacht ingest`` at a time, half before and half after a
restart, store exactly the distinct results of the input — the offsets of the memory bus
start at 0 again after the restart and must not matter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.consumers.test_ingest_integrity import RESULT_FILES, expected_keys, lines_of
from tests.running import wait_running

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "grenswacht.cli"]


def _env(data: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "GRENSWACHT_DATA_DIR": str(data)}


def _start(env: dict[str, str], data: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen([*CLI, "run", "--port", "0"], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    wait_running(data, process, lambda: log.read_text()[-3000:])
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(300) == 0


def _cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([*CLI, *args], capture_output=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_run_ingest_across_a_restart_stores_exactly_the_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(data)
    log = tmp_path / "run.log"
    lines = [line for path in RESULT_FILES for line in lines_of(path)]
    pieces = []
    for number, start in enumerate(range(0, len(lines), 100)):
        piece = tmp_path / f"piece-{number:02d}.jsonl"
        piece.write_bytes(b"\n".join(lines[start:start + 100]) + b"\n")
        pieces.append(piece)
    half = len(pieces) // 2
    run = _start(env, data, log)
    try:
        for piece in pieces[:half]:
            _cli(env, "ingest", str(piece))
        _stop(run)
        run = _start(env, data, log)
        for piece in pieces[half:]:
            _cli(env, "ingest", str(piece))
    finally:
        _stop(run)
    rows = orjson.loads(_cli(env, "sql", "-f", "json",
                             "SELECT count() AS n FROM raw_results FINAL"))
    assert int(rows[0]["n"]) == len(expected_keys(lines))
