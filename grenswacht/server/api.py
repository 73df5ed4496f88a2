"""The JSON routes of the endpoint, their request checks and the error answers.

| method | path | access | body -> answer |
|---|---|---|---|
| GET | ``/healthz`` | open | ``ok`` |
| GET | ``/status`` | read | storage, bus, uptime, components, counters, lag |
| GET | ``/metrics`` | read | Prometheus text |
| POST | ``/sql`` | read | ``{"sql", "max_rows"?, "params"?}`` -> ``{"columns", "types",
  "rows", "truncated"}`` |
| POST | ``/alerts/ack`` | write | ``{"alert_id", "by", "comment"?}`` -> ``{"alert_id",
  "application"}`` |
| POST | ``/ingest`` | write | ``{"records": [{"value", "key"?, "headers"?}]}`` ->
  ``{"accepted"}`` |

``read`` needs the bearer token when the endpoint is bound to a non-loopback address,
``write`` always (grenswacht/server/security.py). POST bodies must be
``Content-Type: application/json`` and a JSON object; sizes are checked on the bytes
actually read. Every refusal is JSON: ``{"error": "...", "kind": "..."}`` with a 4xx status.
Rows are encoded by grenswacht/wire.py; record bytes are base64.

Uploaded records are results from files: their ``gw-source`` is set to ``file`` whatever the
client claims (the claim is kept, as information, in ``gw-origin``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

import anyio
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from grenswacht.server.responses import json_response
from grenswacht.server.security import guard
from grenswacht.wire import encode_rows
from schemas import topics
from schemas.errors import GrenswachtError, QueryError, StorageUnavailable
from schemas.store import QueryResult, Store

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes | None, list[tuple[str, bytes]]]
UPLOAD_SOURCE = "file"
UPLOAD_HEADERS = frozenset({topics.HEADER_ORIGIN, "gw-dead-letter", "gw-detail",
                            "gw-payload-size"})
"""Headers an upload may set besides the forced ``gw-source`` (the others are dropped)."""


class Backend(Protocol):
    """What the endpoint serves; implemented by :class:`grenswacht.embedded.Embedded`."""

    @property
    def store(self) -> Store: ...

    def status(self) -> dict[str, Any]: ...

    def metrics(self) -> tuple[bytes, str]: ...

    def sql(self, sql: str, max_rows: int, params: Mapping[str, Any]) -> QueryResult: ...

    def ack_alert(self, alert_id: str, by: str, comment: str) -> dict[str, str]: ...

    def ingest(self, records: list[Record]) -> int: ...


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as more than ``limit`` bytes arrived (the
    ``Content-Length`` header is only a hint) and with 408 after ``body_timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        if declared.isdigit():
            raise HTTPException(413, f"request body of {declared} bytes is larger than {limit}")
        raise HTTPException(400, "invalid Content-Length header")
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(request.app.state.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"request body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(408, "the request body did not arrive in time") from None
    return b"".join(chunks)


async def json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object (415 unless ``Content-Type: application/json``)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(415, "the body must be Content-Type: application/json")
    body = await read_body(request, limit)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise HTTPException(400, "the body must be a JSON object, not "
                                 f"{_json_kind(document)}")
    return document


async def form_fields(request: Request) -> dict[str, str]:
    """A submitted HTML form (``application/x-www-form-urlencoded``, size-capped like every
    body) as {name: value}; the last of repeated names wins. Verify its CSRF token with
    ``request.app.state.csrf.verify(request, form)`` before acting on it."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(415, "the form must be application/x-www-form-urlencoded")
    body = await read_body(request, request.app.state.small_body)
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=200))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, f"the form cannot be read: {exc}") from None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *,
          required: bool = True, default: Any = None) -> Any:
    """``body[name]`` checked to be of ``kind`` (bool is not an int), else 400."""
    if name not in body or body[name] is None:
        if required:
            raise HTTPException(400, f"the body needs a {name!r} field")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise HTTPException(400, f"{name!r} must be {_names(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise HTTPException(400, f"{name!r} must be {_names(kinds)}, not {_json_kind(value)}")
    return value


def _names(kinds: tuple[type, ...]) -> str:
    words = {str: "a string", int: "an integer", list: "a list", dict: "an object",
             float: "a number", bool: "a boolean"}
    return " or ".join(words.get(k, k.__name__) for k in kinds)


async def call(request: Request, function: Any, *args: Any) -> Any:
    """Run a blocking backend call in a worker thread, mapping our errors to answers."""
    try:
        return await run_in_threadpool(function, *args)
    except StorageUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    except GrenswachtError as exc:
        raise HTTPException(400, str(exc)) from None


@guard("open")
async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


@guard("read")
async def status(request: Request) -> Response:
    return json_response(await call(request, request.app.state.backend.status))


@guard("read")
async def metrics(request: Request) -> Response:
    body, content_type = await call(request, request.app.state.backend.metrics)
    return Response(body, media_type=content_type)


@guard("read")
async def sql(request: Request) -> Response:
    body = await json_object(request, request.app.state.small_body)
    query = field(body, "sql", str)
    if not query.strip():
        raise HTTPException(400, "'sql' is empty")
    max_rows = field(body, "max_rows", int, required=False, default=0)
    if max_rows < 0:
        raise HTTPException(400, "'max_rows' must be 0 (the server's limit) or more")
    params = field(body, "params", dict, required=False, default={})
    result: QueryResult = await call(request, request.app.state.backend.sql, query, max_rows,
                                     params)
    return json_response({"columns": list(result.column_names),
                          "types": list(result.column_types),
                          "rows": encode_rows(result.column_types, result.rows),
                          "truncated": result.truncated})


@guard("write")
async def ack(request: Request) -> Response:
    body = await json_object(request, request.app.state.small_body)
    alert_id = field(body, "alert_id", str).strip()
    by = field(body, "by", str).strip()
    comment = field(body, "comment", str, required=False, default="")
    if not alert_id or not by:
        raise HTTPException(400, "'alert_id' and 'by' must not be empty")
    done = await call(request, request.app.state.backend.ack_alert, alert_id, by, comment)
    return json_response(done)


@guard("write")
async def ingest(request: Request) -> Response:
    body = await json_object(request, request.app.state.max_body)
    records = field(body, "records", list)
    claimed_by = request.client.host if request.client else "?"
    parsed = [_record(index, record, claimed_by) for index, record in enumerate(records)]
    return json_response({"accepted": await call(request, request.app.state.backend.ingest,
                                                 parsed)})


def _record(index: int, record: Any, client: str) -> Record:
    where = f"records[{index}]"
    if not isinstance(record, dict):
        raise HTTPException(400, f"{where} must be an object, not {_json_kind(record)}")
    value = _b64(record.get("value"), f"{where}.value", required=True)
    if value is None:  # for mypy: required
        raise HTTPException(400, f"{where}.value is missing")
    key = _b64(record.get("key"), f"{where}.key", required=False)
    raw_headers = record.get("headers") or []
    if not isinstance(raw_headers, list):
        raise HTTPException(400, f"{where}.headers must be a list of [name, base64] pairs")
    claimed_source = ""
    origin = ""
    headers: list[tuple[str, bytes]] = []
    for position, pair in enumerate(raw_headers):
        if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str)):
            raise HTTPException(400, f"{where}.headers[{position}] must be [name, base64]")
        decoded = _b64(pair[1], f"{where}.headers[{position}]", required=True) or b""
        name = pair[0]
        if name == topics.HEADER_SOURCE:
            claimed_source = decoded.decode("utf-8", "replace")[:40]
        elif name == topics.HEADER_ORIGIN:
            origin = decoded.decode("utf-8", "replace")[:500]
        elif name in UPLOAD_HEADERS:
            headers.append((name, decoded))
    note = f"upload from {client}"
    if claimed_source and claimed_source != UPLOAD_SOURCE:
        note += f", claimed source {claimed_source!r} (not believed)"
    headers[:0] = [(topics.HEADER_SOURCE, UPLOAD_SOURCE.encode()),
                   (topics.HEADER_ORIGIN, f"{origin} ({note})".strip().encode())]
    return value, key, headers


def _b64(value: Any, where: str, *, required: bool) -> bytes | None:
    if value is None:
        if required:
            raise HTTPException(400, f"{where} is missing")
        return None
    if not isinstance(value, str):
        raise HTTPException(400, f"{where} must be a base64 string, not {_json_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, f"{where} is not valid base64") from None


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/sql", sql, methods=["POST"]),
        Route("/alerts/ack", ack, methods=["POST"]),
        Route("/ingest", ingest, methods=["POST"]),
    ]
