"""The loopback RIPE Atlas: HTTPS REST API (stdlib ``http.server``) and the result stream
(a ``websockets`` server speaking cousteau's ``["atlas_subscribe", {...}]`` protocol), both
with certificates from a ``trustme`` test CA. Binds 127.0.0.1 only.

Endpoints (the ones ripe-atlas-cousteau calls): ``POST /api/v2/measurements/``,
``DELETE /api/v2/measurements/<id>``, ``GET /api/v2/measurements/my/``,
``GET /api/v2/measurements/<id>/``, ``GET /api/v2/measurements/<id>/results``,
``GET /api/v2/measurements/<id>/latest``, ``GET /api/v2/probes/`` (the recorded real probe
objects of every ``tests/fixtures/atlas/api/*probes_api_v2.json``, filtered by ``id__in``,
``country_code``, ``asn_v4``, ``tags``, ``is_anchor``, ``status`` and ``radius``); stream at
``/stream/``. A created ping measurement answers with recorded real ping results relabelled
with its id, target and requested probes.
"""

from __future__ import annotations

import json
import math
import queue
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.fakes.atlas.state import FakeAtlasState, LoggedRequest

_MSM = re.compile(r"^/api/v2/measurements/(\d+)/?$")
_RESULTS = re.compile(r"^/api/v2/measurements/(\d+)/(results|latest)/?$")
NEEDS = {"POST": "create", "DELETE": "stop"}


def _error(status: int, title: str, detail: str) -> dict[str, Any]:
    return {
        "error": {"status": status, "code": 100 + status % 100, "title": title, "detail": detail}
    }


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the state's request log is the record."""

    def _send(
        self,
        status: int,
        payload: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = (
            raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        body: Any = None
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._send(400, _error(400, "Bad Request", "body is not JSON"))
                return
        auth = self.headers.get("Authorization", "")
        key = auth[4:].strip() if auth.startswith("Key ") else None
        with state.lock:
            state.requests.append(LoggedRequest(method, url.path, query, body, key is not None))
        failure = state.take_failure(url.path)
        if failure is not None:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            self._send(
                failure.status,
                _error(failure.status, "Injected", "try again later"),
                headers=headers,
            )
            return
        if key is not None and key not in state.keys:
            self._send(403, _error(403, "Forbidden", "The provided API key does not exist"))
            return
        permissions = state.keys.get(key or "", set())
        needed = NEEDS.get(method) or (
            "list" if url.path.startswith("/api/v2/measurements/my") else None
        )
        if needed and needed not in permissions:
            detail = (
                "Authentication credentials were not provided."
                if key is None
                else "The provided API key does not have the required permission."
            )
            self._send(403, _error(403, "Forbidden", detail))
            return
        self._route(method, url.path, query, body)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        state = self.server.state
        if method == "POST" and path == "/api/v2/measurements/":
            problem = _validate_create(body)
            if problem:
                self._send(400, _error(400, "Bad Request", problem))
                return
            self._send(201, {"measurements": state.create(body)})
        elif method == "DELETE" and (m := _MSM.match(path)):
            msm = state.measurements.get(int(m.group(1)))
            if msm is None:
                self._send(404, _error(404, "Not Found", "no such measurement"))
                return
            msm.meta["status"] = {"id": 4, "name": "Stopped"}
            self._send(204)
        elif method == "GET" and path.rstrip("/") == "/api/v2/measurements/my":
            wanted = set((query.get("status__in") or "0,1,2,4").split(","))
            tag = query.get("tags")
            items = [
                m.meta
                for _, m in sorted(state.measurements.items())
                if str(m.meta["status"]["id"]) in wanted and (tag is None or tag in m.meta["tags"])
            ]
            self._page(path, query, [{k: v for k, v in i.items() if k != "probes"} for i in items])
        elif method == "GET" and (m := _MSM.match(path)):
            msm = state.measurements.get(int(m.group(1)))
            if msm is None:
                self._send(404, _error(404, "Not Found", "no such measurement"))
            else:
                self._send(200, msm.meta)
        elif method == "GET" and (m := _RESULTS.match(path)):
            msm_id = int(m.group(1))
            if msm_id not in state.measurements:
                self._send(404, _error(404, "Not Found", "no such measurement"))
                return
            probe_ids = (
                {int(p) for p in query["probe_ids"].split(",")} if query.get("probe_ids") else None
            )
            start = int(query["start"]) if "start" in query else None
            stop = int(query["stop"]) if "stop" in query else None
            raws = state.results(msm_id, start, stop, probe_ids)
            if m.group(2) == "latest":
                latest: dict[int, bytes] = {}
                for raw in raws:
                    latest[json.loads(raw)["prb_id"]] = raw
                raws = list(latest.values())
            self._send(200, raw=b"[" + b",".join(raws) + b"]")
        elif method == "GET" and path.rstrip("/") == "/api/v2/probes":
            self._page(path, query, _filter_probes(state.probes, query))
        else:
            self._send(404, _error(404, "Not Found", f"{method} {path}"))

    def _page(self, path: str, query: dict[str, str], items: list[dict[str, Any]]) -> None:
        size = int(query.get("page_size") or 50)
        page = int(query.get("page") or 1)
        chunk = items[(page - 1) * size : page * size]
        nxt = None
        if page * size < len(items):
            rest = "&".join(f"{k}={v}" for k, v in {**query, "page": str(page + 1)}.items())
            host, port = self.server.server_address[:2]
            nxt = f"https://{host}:{port}{path}?{rest}"
        self._send(200, {"count": len(items), "next": nxt, "previous": None, "results": chunk})

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def _validate_create(body: Any) -> str:
    if not isinstance(body, dict) or not body.get("definitions") or not body.get("probes"):
        return "definitions and probes are required"
    required = {
        "traceroute": ("target", "protocol", "af", "description"),
        "dns": ("query_class", "query_type", "query_argument", "af", "description"),
        "ping": ("target", "af", "description"),
    }
    for index, definition in enumerate(body["definitions"]):
        kind = definition.get("type")
        if kind not in required:
            return f"definitions[{index}].type: unsupported {kind!r}"
        missing = [k for k in required[kind] if k not in definition]
        if missing:
            return f"definitions[{index}]: missing {', '.join(missing)}"
    for index, probe in enumerate(body["probes"]):
        if not {"type", "value", "requested"} <= set(probe):
            return f"probes[{index}]: type, value and requested are required"
    return ""


def _filter_probes(probes: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for probe in probes:
        slugs = {t["slug"] for t in probe.get("tags", [])}
        if "country_code" in query and probe.get("country_code") != query["country_code"]:
            continue
        if "asn_v4" in query and str(probe.get("asn_v4")) != query["asn_v4"]:
            continue
        if "id__in" in query and str(probe["id"]) not in query["id__in"].split(","):
            continue
        if "tags" in query and not set(query["tags"].split(",")) <= slugs:
            continue
        if "is_anchor" in query and str(probe.get("is_anchor")).lower() != query["is_anchor"]:
            continue
        if "status" in query and str((probe.get("status") or {}).get("id")) != query["status"]:
            continue
        if "radius" in query and not _within(probe, query["radius"]):
            continue
        out.append(probe)
    return out


def _within(probe: dict[str, Any], radius: str) -> bool:
    """The API's ``radius=lat,lon:km`` filter (great-circle distance)."""
    place, _, km = radius.partition(":")
    lat, _, lon = place.partition(",")
    coordinates = (probe.get("geometry") or {}).get("coordinates") or []
    if len(coordinates) < 2:
        return False
    p_lon, p_lat = (math.radians(float(c)) for c in coordinates[:2])
    c_lat, c_lon = math.radians(float(lat)), math.radians(float(lon))
    cos = (math.sin(p_lat) * math.sin(c_lat)
           + math.cos(p_lat) * math.cos(c_lat) * math.cos(p_lon - c_lon))
    return 6371.0088 * math.acos(max(-1.0, min(1.0, cos))) <= float(km)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeAtlasState


class FakeAtlas:
    """Both servers. ``start()`` binds (port 0 picks free ports), ``stop()`` ends them."""

    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        stream_port: int = 0,
        state: FakeAtlasState | None = None,
    ) -> None:
        self.workdir = workdir
        self.state = state or FakeAtlasState()
        self._ports = (port, stream_port)
        self._ca = trustme.CA()
        self.ca_file = workdir / "fake-atlas-ca.pem"
        self._threads: list[threading.Thread] = []
        self._http: _HTTPServer | None = None
        self._ws: Server | None = None
        self._streams: list[tuple[ServerConnection, queue.SimpleQueue[bytes | None], set[int]]] = []

    def start(self) -> FakeAtlas:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._http = _HTTPServer(("127.0.0.1", self._ports[0]), _Handler)
        self._http.state = self.state
        self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        self._ws = serve(
            self._stream_handler, "127.0.0.1", self._ports[1], ssl=context, ping_interval=None
        )
        self.state.listeners.append(self._push)
        http = self._http
        for target in (lambda: http.serve_forever(poll_interval=0.05), self._ws.serve_forever):
            thread = threading.Thread(target=target, daemon=True, name="fake-atlas")
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def base_url(self) -> str:
        assert self._http is not None
        return f"https://127.0.0.1:{self._http.server_address[1]}"

    @property
    def stream_url(self) -> str:
        assert self._ws is not None
        return f"https://127.0.0.1:{self._ws.socket.getsockname()[1]}"

    def stop(self) -> None:
        self.drop_streams()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._ws is not None:
            self._ws.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- stream ----------------------------------------------------------------------------
    def _push(self, msm_id: int, raw: bytes) -> None:
        frame = b'["atlas_result",' + raw + b"]"
        for _, outbox, subscribed in list(self._streams):
            if msm_id in subscribed:
                outbox.put(frame)

    def drop_streams(self) -> None:
        """Close every stream connection (a disconnect in the middle of a measurement)."""
        for _, outbox, _ in list(self._streams):
            outbox.put(None)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def _stream_handler(self, connection: ServerConnection) -> None:
        if connection.request is None or connection.request.path.rstrip("/") != "/stream":
            connection.close(code=1008, reason="unknown path")
            return
        outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        subscribed: set[int] = set()
        entry = (connection, outbox, subscribed)
        self._streams.append(entry)
        try:
            while True:
                try:
                    message = connection.recv(timeout=0.02)
                    event, payload = json.loads(message)
                    if event == "atlas_subscribe" and payload.get("stream_type") == "result":
                        subscribed.add(int(payload["msm"]))
                        connection.send(json.dumps(["atlas_subscribed", payload]))
                except TimeoutError:
                    pass
                while not outbox.empty():
                    frame = outbox.get()
                    if frame is None:
                        connection.close()
                        return
                    connection.send(frame.decode())
        except ConnectionClosed:
            return
        finally:
            self._streams.remove(entry)


def wait_subscribed(fake: FakeAtlas, msm_ids: set[int], timeout: float = 300.0) -> bool:
    """Block until some stream connection subscribed to every id in ``msm_ids`` (False after
    ``timeout``: a hang guard of minutes, it returns as soon as the subscription is there)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(msm_ids <= subscribed for _, _, subscribed in list(fake._streams)):
            return True
        time.sleep(0.01)
    return False
