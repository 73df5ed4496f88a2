"""Talk to a running ``grenswacht run`` through its endpoint (see grenswacht/server.py)."""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from schemas.errors import GrenswachtError, QueryError, StorageUnavailable


def running_endpoint(data_dir: Path) -> str | None:
    """The endpoint URL of the ``grenswacht run`` holding ``data_dir``, if one is up."""
    state = data_dir / "run.json"
    try:
        info = orjson.loads(state.read_bytes())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    url = str(info.get("url", ""))
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=3) as response:  # noqa: S310
            return url if response.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _call(url: str, path: str, body: dict[str, Any] | None = None, timeout: float = 300) -> Any:
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(  # noqa: S310 - URL comes from our own run.json
        f"{url}{path}", data=data, method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = orjson.loads(exc.read()).get("error", str(exc))
        except (orjson.JSONDecodeError, AttributeError):
            error = str(exc)
        if exc.code == 400:
            raise QueryError(error) from exc
        raise GrenswachtError(f"{url}{path}: {error}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise StorageUnavailable(f"cannot reach grenswacht run at {url}: {exc}") from exc


def remote_sql(url: str, sql: str, max_rows: int = 0) -> dict[str, Any]:
    return dict(_call(url, "/sql", {"sql": sql, "max_rows": max_rows}))


def remote_status(url: str) -> dict[str, Any]:
    return dict(_call(url, "/status"))


def remote_ack(url: str, alert_id: str, by: str, comment: str) -> dict[str, str]:
    return dict(_call(url, "/alerts/ack", {"alert_id": alert_id, "by": by, "comment": comment}))


def remote_ingest(
    url: str, records: list[tuple[bytes, bytes | None, tuple[tuple[str, bytes], ...]]]
) -> int:
    body = {"records": [
        {
            "value": base64.b64encode(value).decode(),
            "key": base64.b64encode(key).decode() if key else None,
            "headers": [[k, base64.b64encode(v).decode()] for k, v in headers],
        }
        for value, key, headers in records
    ]}
    return int(_call(url, "/ingest", body)["accepted"])
