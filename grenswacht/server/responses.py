"""The endpoint's answers: JSON documents (grenswacht/wire.py) and JSON errors
``{"error": "...", "kind": "..."}`` (the message redacted: no secret leaves in an error)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from grenswacht.wire import dumps
from schemas.redact import redact


def error_response(status: int, message: str, kind: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": redact(message), "kind": kind}), status_code=status,
                    media_type="application/json", headers=dict(headers or {}))


def json_response(document: Any) -> Response:
    return Response(dumps(document), media_type="application/json")
