"""/healthz and /metrics of a component running as its own process (grenswacht/health.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from consumers.metrics import DEAD_LETTERS
from grenswacht.health import MetricsSettings, serve


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_and_metrics_on_loopback() -> None:
    healthy = {"ok": True}
    server = serve(MetricsSettings(port=0), lambda: healthy["ok"])
    assert server is not None
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        DEAD_LETTERS.labels("test_reason").inc()
        assert _get(f"{base}/healthz") == (200, "ok\n")
        code, body = _get(f"{base}/metrics")
        assert code == 200 and 'grenswacht_dead_letters_total{reason="test_reason"}' in body
        healthy["ok"] = False
        assert _get(f"{base}/healthz")[0] == 503
        assert _get(f"{base}/nothing")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_disabled_serves_nothing() -> None:
    assert serve(MetricsSettings(enabled=False, port=0), lambda: True) is None


@pytest.mark.parametrize("port", [-1, 70000])
def test_bad_port_is_refused(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        MetricsSettings(port=port)


def _wait_for(log: Path, marker: str, process: subprocess.Popen[bytes], what: str) -> None:
    """Until ``marker`` is in ``log`` (a hang guard of 300 s: starting the store under load
    is slow, but it does not take minutes)."""
    deadline = time.monotonic() + 300
    while marker not in log.read_text(errors="replace"):
        assert process.poll() is None, f"exited with {process.returncode}: {log.read_text()}"
        assert time.monotonic() < deadline, f"{what}: {log.read_text()[-3000:]}"
        time.sleep(0.2)


def test_sigusr1_writes_every_threads_stack_and_the_component_goes_on(tmp_path: Path) -> None:
    """What an operator does with a component that seems stuck (docs/deploy.md)."""
    root = Path(__file__).resolve().parents[1]
    log = tmp_path / "consumer.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "grenswacht.cli", "consume", "ingest", "--bus", "memory://",
             "--storage", f"chdb://{tmp_path / 'store'}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
    try:
        _wait_for(log, "consume ingest:", process, "the consumer did not start")
        process.send_signal(signal.SIGUSR1)
        _wait_for(log, "(most recent call first)", process, "no stack after SIGUSR1")
        assert "grenswacht/commands/consume.py" in log.read_text()
        assert process.poll() is None, "SIGUSR1 stopped the component"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
