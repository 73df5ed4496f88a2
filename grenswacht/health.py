"""``/healthz`` and ``/metrics`` (prometheus-client) for a component running as its own
process (``grenswacht consume …``, ``schedule``, ``probe run``); the embedded
``grenswacht run`` serves both on its endpoint instead. Port: ``metrics.port`` (9464)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field


class MetricsSettings(BaseModel):
    enabled: bool = Field(
        default=True, description="Serve /healthz and /metrics from component processes."
    )
    host: str = Field(default="127.0.0.1", description="Address of the /healthz and /metrics "
                      "server of component processes (the Helm chart sets 0.0.0.0).")
    port: int = Field(default=9464, ge=0, le=65535,
                      description="Port of the /healthz and /metrics server.")


def metrics_payload() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


def serve(settings: MetricsSettings, healthy: Callable[[], bool]) -> ThreadingHTTPServer | None:
    """Start the server in a daemon thread (None when disabled). ``healthy`` answers
    ``/healthz``: 200 ``ok`` or 503."""
    if not settings.enabled:
        return None

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/metrics":
                body, content_type, code = *metrics_payload(), 200
            elif self.path == "/healthz":
                ok = healthy()
                body, content_type, code = (b"ok\n" if ok else b"unhealthy\n"), "text/plain", (
                    200 if ok else 503)
            else:
                body, content_type, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((settings.host, settings.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
