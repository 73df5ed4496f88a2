"""The embedded process's HTTP endpoint (loopback by default): status, read-only SQL, and
result upload, so that ``grenswacht sql`` and ``grenswacht ingest`` work while ``grenswacht
run`` holds the chDB directory (chDB allows one process per data directory).

| method | path | body | answer |
|---|---|---|---|
| GET | ``/healthz`` | | ``ok`` |
| GET | ``/status`` | | JSON: storage, bus, uptime, components, counters, lag |
| POST | ``/sql`` | ``{"sql": "...", "max_rows": N}`` | ``{"columns", "types", "rows"}`` |
| POST | ``/alerts/ack`` | ``{"alert_id", "by", "comment"}`` | ``{"alert_id", "application"}`` |
| POST | ``/ingest`` | ``{"records": [{"value", "key", "headers"}]}`` | ``{"accepted": N}`` |

Record bytes are base64. Errors answer HTTP 400 with ``{"error": "...", "kind": "..."}``.

It has no authentication: keep it on loopback, or put a proxy with authentication in front.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from grenswacht.render import plain
from schemas.errors import GrenswachtError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024


class Backend:
    """What the endpoint serves; implemented by :class:`grenswacht.embedded.Embedded`."""

    status: Callable[[], dict[str, Any]]
    sql: Callable[[str, int], dict[str, Any]]
    ingest: Callable[[list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]]], int]


def _handler(backend: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "grenswacht"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("%s " + format, self.client_address[0], *args)

        def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else orjson.dumps(body, default=plain)
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError(f"body of {length} bytes is larger than {MAX_BODY}")
            return orjson.loads(self.rfile.read(length) or b"{}")

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif self.path == "/status":
                self._send(200, backend.status())
            elif self.path == "/metrics" and hasattr(backend, "metrics"):
                body, content_type = backend.metrics()
                self._send(200, body, content_type)
            else:
                self._send(404, {"error": f"no such endpoint {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                body = self._body()
                if self.path == "/sql":
                    sql = body.get("sql")
                    if not isinstance(sql, str):
                        raise ValueError("body needs a 'sql' string")
                    self._send(200, backend.sql(sql, int(body.get("max_rows") or 0)))
                elif self.path == "/alerts/ack":
                    self._send(200, backend.ack_alert(str(body["alert_id"]), str(body["by"]),
                                                      str(body.get("comment", ""))))
                elif self.path == "/ingest":
                    records = [
                        (
                            base64.b64decode(r["value"]),
                            base64.b64decode(r["key"]) if r.get("key") else None,
                            [(k, base64.b64decode(v)) for k, v in r.get("headers", [])],
                        )
                        for r in body.get("records", [])
                    ]
                    self._send(200, {"accepted": backend.ingest(records)})
                else:
                    self._send(404, {"error": f"no such endpoint {self.path}"})
            except GrenswachtError as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc), "kind": type(exc).__name__})
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {exc}"})

    return Handler


class Endpoint:
    def __init__(self, backend: Any, host: str, port: int) -> None:
        self.backend = backend
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self.backend))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="endpoint", daemon=True
        )
        self._thread.start()
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
