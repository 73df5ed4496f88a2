"""Talk to a running ``grenswacht run`` through its endpoint (grenswacht/server/).

:func:`local_endpoint` finds the ``run`` that holds this data directory (``run.json``) and the
token it serves with (:func:`grenswacht.server.auth.find_token`, else the file ``run.json``
names), so the CLI needs no configuration to use it. :class:`EndpointClient` makes the calls.
"""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from grenswacht.server.auth import ServerToken, find_token
from grenswacht.settings import Settings
from schemas.errors import ConfigError, GrenswachtError, QueryError, StorageUnavailable
from schemas.redact import redact

Record = tuple[bytes, bytes | None, Sequence[tuple[str, bytes]]]


def _state(data_dir: Path) -> dict[str, Any] | None:
    try:
        info = orjson.loads((data_dir / "run.json").read_bytes())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return dict(info) if isinstance(info, dict) else None


def running_endpoint(data_dir: Path) -> str | None:
    """The endpoint URL of the ``grenswacht run`` holding ``data_dir``, if one is up."""
    info = _state(data_dir)
    if info is None:
        return None
    url = str(info.get("url", ""))
    try:
        # a refused connection answers at once; the timeout only bounds a busy endpoint,
        # which is still up (a loaded machine must not make the CLI open the store itself)
        with urllib.request.urlopen(f"{url}/healthz", timeout=30) as response:  # noqa: S310
            return url if response.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def local_endpoint(settings: Settings) -> EndpointClient | None:
    """A client for the ``run`` of ``settings.data_dir`` with its token, or None."""
    url = running_endpoint(settings.data_dir)
    if url is None:
        return None
    try:
        token = find_token(settings)
    except ConfigError:
        token = None
    if token is None:
        source = str((_state(settings.data_dir) or {}).get("token_source", ""))
        if source and source != "server.token":
            try:
                value = Path(source).read_text(encoding="utf-8").strip()
                token = ServerToken(value, source) if value else None
            except OSError:
                token = None
    return EndpointClient(url, token)


class EndpointClient:
    """The endpoint's routes as methods. Errors: 400 -> :class:`QueryError`, 503 ->
    :class:`StorageUnavailable`, anything else -> :class:`GrenswachtError` (redacted)."""

    def __init__(self, url: str, token: ServerToken | None = None, timeout: float = 300) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"EndpointClient({self.url!r})"

    def call(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.value}"
        request = urllib.request.Request(  # noqa: S310 - URL from our own run.json
            f"{self.url}{path}", data=None if body is None else orjson.dumps(body),
            method="GET" if body is None else "POST", headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise self._error(path, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise StorageUnavailable(f"cannot reach grenswacht run at {self.url}: {exc}",
                                     retry_after=1.0) from exc

    def _error(self, path: str, exc: urllib.error.HTTPError) -> GrenswachtError:
        try:
            error = str(orjson.loads(exc.read()).get("error", exc.reason))
        except (orjson.JSONDecodeError, AttributeError, OSError):
            error = str(exc.reason)
        error = redact(error)
        if exc.code == 400:
            return QueryError(error)
        if exc.code == 401:
            where = self.token.source if self.token else "none found"
            return GrenswachtError(f"{self.url}{path}: {error} (token: {where})")
        if exc.code == 503:
            return StorageUnavailable(f"{self.url}{path}: {error}", retry_after=1.0)
        return GrenswachtError(f"{self.url}{path}: HTTP {exc.code}: {error}")

    def status(self) -> dict[str, Any]:
        return dict(self.call("/status"))

    def sql(self, sql: str, params: Mapping[str, Any] | None = None,
            max_rows: int = 0) -> dict[str, Any]:
        """``POST /sql``; ``params`` must already be wire values (grenswacht/wire.py)."""
        return dict(self.call("/sql", {"sql": sql, "max_rows": max_rows,
                                       "params": dict(params or {})}))

    def ack(self, alert_id: str, by: str, comment: str) -> dict[str, str]:
        return dict(self.call("/alerts/ack",
                              {"alert_id": alert_id, "by": by, "comment": comment}))

    def ingest(self, records: Sequence[Record]) -> int:
        body = {"records": [
            {
                "value": base64.b64encode(value).decode(),
                "key": base64.b64encode(key).decode() if key else None,
                "headers": [[k, base64.b64encode(v).decode()] for k, v in headers],
            }
            for value, key, headers in records
        ]}
        return int(self.call("/ingest", body)["accepted"])
