"""Loopback receivers (127.0.0.1 only) and the enricher of the alert tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from consumers.enrich import Enricher, JurisdictionSettings, VantageRegistry, open_enricher

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROBE_FILES = sorted((FIXTURES / "atlas" / "api").glob("pierky_*_probes_api_v2.json"))
SECRET = "s3cret-for-loopback-tests"  # noqa: S105 - a test key for 127.0.0.1


@pytest.fixture(scope="session")
def jurisdiction() -> JurisdictionSettings:
    return JurisdictionSettings(atlas_probe_files=PROBE_FILES)


@pytest.fixture(scope="session")
def enricher_and_registry(jurisdiction: JurisdictionSettings) -> tuple[Enricher,
                                                                       VantageRegistry]:
    return open_enricher(jurisdiction)


class Receiver:
    """An HTTP receiver on 127.0.0.1 that can go down (socket closed) and come back on the
    same port. ``kind`` "webhook" checks the HMAC signature itself (independently of the
    sender's code); "alertmanager" accepts ``POST /api/v2/alerts`` like Alertmanager."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.received: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.lock = threading.Lock()
        self.in_flight = 0  # connections accepted and not yet handled (see settle)
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        path = "/hooks/grenswacht" if self.kind == "webhook" else ""
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                if self.path == "/_settle":
                    self.send_response(204)
                    self.end_headers()
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code = receiver.handle(self.path, dict(self.headers.items()), body)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            def process_request(self, request: Any, client_address: Any) -> None:
                with receiver.lock:
                    receiver.in_flight += 1
                super().process_request(request, client_address)

            def process_request_thread(self, request: Any, client_address: Any) -> None:
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if self.kind == "alertmanager":
            if path != "/api/v2/alerts":
                return 404
            alerts = json.loads(body)
            with self.lock:
                self.received.extend(alerts)
            return 200
        if self.kind == "webhook":
            timestamp = headers.get("X-Grenswacht-Timestamp", "")
            expected = "sha256=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
            signature = headers.get("X-Grenswacht-Signature", "")
            if not hmac.compare_digest(expected, signature) or abs(
                    time.time() - float(timestamp or 0)) > 300:
                with self.lock:
                    self.rejected.append(signature)
                return 401
        document = json.loads(body)
        document["_delivery"] = headers.get("X-Grenswacht-Delivery", "")
        with self.lock:
            self.received.append(document)
        return 200

    def settle(self, timeout: float = 300.0) -> list[dict[str, Any]]:
        """Everything received once the senders are gone: a request of our own queues behind
        any connection a sender made before (the listen queue is FIFO), then every accepted
        connection is handled to the end. Instead of sleeping and hoping."""
        with urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - loopback
                f"http://127.0.0.1:{self.port}/_settle", data=b"", method="POST"),
                timeout=timeout):
            pass
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.in_flight == 0:
                    return list(self.received)
            assert time.monotonic() < deadline, "the receiver never settled"
            time.sleep(0.05)

    def wait_for(self, count: int, timeout: float = 300.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        with self.lock:
            return list(self.received)


@pytest.fixture()
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver("webhook").start()
    yield receiver
    receiver.stop()


@pytest.fixture()
def alertmanager_receiver() -> Iterator[Receiver]:
    receiver = Receiver("alertmanager").start()
    yield receiver
    receiver.stop()


@pytest.fixture()
def json_receiver() -> Iterator[Receiver]:
    """For apprise's json:// notifications (no signature)."""
    receiver = Receiver("json").start()
    yield receiver
    receiver.stop()
