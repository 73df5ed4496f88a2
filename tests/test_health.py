"""/healthz and /metrics of a component running as its own process (grenswacht/health.py)."""

from __future__ import annotations

import urllib.error
import urllib.request

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
