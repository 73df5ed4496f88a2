"""A running endpoint of ``grenswacht run`` (in-process: one chDB engine per process, the
session store) and a plain HTTP client that sends exactly what a test says."""

from __future__ import annotations

import http.client
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from consumers.storage import Storage
from grenswacht.embedded import Embedded
from grenswacht.settings import ServerSettings, Settings

_NAMES = itertools.count()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Running:
    app: Embedded
    url: str
    token: str
    storage: Storage

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None,
                host: str | None = None) -> Reply:
        """One request on a fresh connection. ``body``: JSON (Content-Type set);
        ``raw``: bytes as they are; ``host``: the Host header to claim."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = orjson.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", host if host is not None else f"127.0.0.1:{self.port}")
            for name, value in sent.items():
                connection.putheader(name, value)
            if data is not None and "Content-Length" not in sent and (
                    "Transfer-Encoding" not in sent):
                connection.putheader("Content-Length", str(len(data)))
            connection.endheaders(data)
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read())
        finally:
            connection.close()

    def sql(self, query: str, **kwargs: Any) -> Reply:
        return self.request("POST", "/sql", {"sql": query}, **kwargs)


def settings_for(tmp_path: Path, chdb_dsn: str, **server: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", storage=chdb_dsn,
                    bus=f"memory://endpoint-{next(_NAMES)}",
                    server=ServerSettings(port=0, **server))


@pytest.fixture()
def endpoint(storage: Storage, chdb_dsn: str, tmp_path: Path) -> Iterator[Running]:
    cfg = settings_for(tmp_path, chdb_dsn, header_timeout_s=1.0, keep_alive_s=1.0,
                       max_connections=400)
    app = Embedded(cfg)
    app.start(only={"ingest"})
    assert app.token is not None
    try:
        yield Running(app, app.url, app.token.value, storage)
    finally:
        app.stop()
