"""The CLI as a user runs it: real processes, a real chDB directory per test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.running import wait_running

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "atlas"


def gw(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "grenswacht.cli", *args], env=env,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"grenswacht {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "GRENSWACHT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
            "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_ingest_then_sql_round_trip(env: dict[str, str]) -> None:
    out = gw(env, "ingest", str(FIXTURES / "traceroute"), str(FIXTURES / "ping"), "-f", "json")
    summary = json.loads(out.stdout)[0]
    assert summary["files"] == 9 and summary["results"] > 100 and summary["dead_letters"] == 0
    answer = json.loads(gw(env, "sql", "SELECT count() AS n FROM traceroute_hops", "-f",
                           "json").stdout)
    assert answer == [{"n": summary["traceroute_hops"]}]
    csv = gw(env, "sql", "SELECT probe_id, rtt_min_ms FROM ping_results ORDER BY probe_id, "
                         "rtt_min_ms LIMIT 2", "-f", "csv").stdout.splitlines()
    assert csv[0] == "probe_id,rtt_min_ms" and len(csv) == 3


def test_clear_errors(env: dict[str, str], tmp_path: Path) -> None:
    missing = gw(env, "ingest", str(tmp_path / "nope.jsonl"), check=False)
    assert missing.returncode == 2 and "nope.jsonl: no such file" in missing.stderr
    write = gw(env, "sql", "DROP TABLE traceroute_hops", check=False)
    assert write.returncode == 2 and "only SELECT" in write.stderr
    bad = gw(env, "sql", "SELECT nonsense FROM traceroute_hops", check=False)
    assert bad.returncode == 2 and "nonsense" in bad.stderr
    (tmp_path / "bad.toml").write_text("[ingest]\nbatch_size = -4\n")
    config = gw(env, "--config", str(tmp_path / "bad.toml"), "sql", "SELECT 1", check=False)
    assert config.returncode == 2 and "ingest.batch_size" in config.stderr


def test_run_serves_sql_and_ingest_while_it_holds_the_store(env: dict[str, str]) -> None:
    env = {**env, "GRENSWACHT_SERVER__PORT": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "grenswacht.cli", "run", "--ingest",
         str(FIXTURES / "traceroute" / "sagan_tests.jsonl")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_running(Path(env["GRENSWACHT_DATA_DIR"]), process)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            out = gw(env, "sql", "SELECT count() AS n FROM raw_results", "-f", "json")
            if json.loads(out.stdout) == [{"n": 21}]:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"preloaded results never arrived: {out.stdout}")
        # a second process ingests through the endpoint (chDB: one process per directory)
        sent = gw(env, "ingest", str(FIXTURES / "ping" / "sagan_tests.jsonl"), "-f", "json")
        assert json.loads(sent.stdout)[0]["results_sent"] == 14
        pings = gw(env, "sql", "SELECT count() AS n FROM ping_results FINAL", "-f", "json")
        assert json.loads(pings.stdout) == [{"n": 14}]
        status = json.loads(gw(env, "status", "-f", "json").stdout)[0]
        assert status["components"]["ingest"]["results"] == 35
        # Prometheus metrics on the same endpoint (names: docs/deploy.md)
        url = json.loads((Path(env["GRENSWACHT_DATA_DIR"]) / "run.json").read_text())["url"]
        with urllib.request.urlopen(f"{url}/metrics", timeout=120) as response:  # noqa: S310
            metrics = response.read().decode()
        assert 'grenswacht_results_ingested_total{source="file",type="traceroute"} 21.0' in (
            metrics)
        assert "grenswacht_consumer_lag" in metrics
        # the analysis consumer turns the stored traceroutes into path verdicts
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            verdicts = json.loads(gw(env, "sql", "SELECT count() AS n FROM path_verdicts FINAL",
                                     "-f", "json").stdout)[0]["n"]
            if verdicts >= 20:  # 21 traces; one has no destination (DNS failed)
                break
            time.sleep(0.5)
        assert verdicts >= 20, gw(env, "status", "-f", "json").stdout
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert not (Path(env["GRENSWACHT_DATA_DIR"]) / "run.json").exists()
    # after the stop, the CLI opens the store itself and sees the same rows
    after = gw(env, "sql", "SELECT count() AS n FROM raw_results FINAL", "-f", "json")
    assert json.loads(after.stdout) == [{"n": 35}]
