"""The attacks of issue 13 through the CLI, with and without ``grenswacht run`` up (real
processes): refused with a clear error, and nothing changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.running import wait_running
from tests.test_cli import FIXTURES, gw

ATTACKS = [
    ("SELECT 1; DROP TABLE raw_results", "Multi-statements are not allowed"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "is not allowed"),
    ("SELECT file('/proc/self/environ')", "is not allowed"),
    ("SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')", "is not allowed"),
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS are not allowed"),
    ("KILL QUERY WHERE 1", "only SELECT"),
]


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "GRENSWACHT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "GRENSWACHT_SERVER__PORT": "0"}


@pytest.fixture()
def running(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-m", "grenswacht.cli", "run"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_running(Path(env["GRENSWACHT_DATA_DIR"]), process)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=300)


def _attack(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    for query, message in [*ATTACKS, (f"SELECT 'x' INTO OUTFILE '{target}'", "INTO OUTFILE")]:
        done = gw(env, "sql", query, check=False)
        assert done.returncode == 2 and message in done.stderr, (query, done.stderr)
        assert "root:" not in done.stdout and "PATH=" not in done.stdout
    assert not target.exists()
    tables = json.loads(gw(env, "sql", "EXISTS TABLE raw_results", "-f", "json").stdout)
    assert tables == [{"result": 1}]


def test_cli_refuses_the_attacks_without_run(env: dict[str, str], tmp_path: Path) -> None:
    _attack(env, tmp_path)


def test_cli_refuses_the_attacks_through_run_and_finds_the_token(
        env: dict[str, str], running: subprocess.Popen[str], tmp_path: Path) -> None:
    _attack(env, tmp_path)
    # the write route works for the CLI: it reads the token from the data directory
    sent = gw(env, "ingest", str(FIXTURES / "ping" / "sagan_tests.jsonl"), "-f", "json")
    assert json.loads(sent.stdout)[0]["results_sent"] == 14
    sources = json.loads(gw(env, "sql", "SELECT DISTINCT source FROM raw_results",
                            "-f", "json").stdout)
    assert sources == [{"source": "file"}]
    token = (Path(env["GRENSWACHT_DATA_DIR"]) / "server.token").read_text().strip()
    status = gw(env, "status", "-f", "json").stdout
    assert token not in status and json.loads(status)[0]["components"]["ingest"]


def test_run_refuses_a_public_bind_without_a_token(env: dict[str, str]) -> None:
    done = gw({**env, "GRENSWACHT_SERVER__HOST": "0.0.0.0"}, "run", check=False)  # noqa: S104
    assert done.returncode == 2
    assert "not a loopback address: set server.token" in done.stderr
    assert not (Path(env["GRENSWACHT_DATA_DIR"]) / "run.json").exists()
