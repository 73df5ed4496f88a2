"""One way for every command to reach the data: :func:`open_store`.

chDB allows one process per data directory, so while ``grenswacht run`` holds the store a
command must read through its endpoint; otherwise it opens the store itself.
:func:`open_store` decides that once, for every command (``sql``, ``verdicts``, ``findings``,
``graph``, ``explain``, ``alerts``, …), and returns a :class:`~schemas.store.Store`:

* a :class:`RemoteStore` (queries through ``POST /sql``, rows decoded to the same Python
  values as locally, grenswacht/wire.py), or
* a ``consumers.storage.Storage`` (the engine itself).

Writes that must work both ways have a function here that picks the route:
:func:`acknowledge_alert` (``POST /alerts/ack`` or the store). A :class:`RemoteStore` has no
raw ``insert``: the endpoint accepts writes only through its named, token-protected routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from consumers.alerts.store import AlertStore
from consumers.storage import Storage, open_storage
from grenswacht.client import EndpointClient, local_endpoint
from grenswacht.settings import Settings
from grenswacht.wire import decode_rows, encode_parameters
from schemas.errors import GrenswachtError, StorageError
from schemas.store import QueryResult, Store


class RemoteStore:
    """The :class:`~schemas.store.Store` of a running ``grenswacht run``, through its
    endpoint. Every query is checked there as untrusted read-only SQL."""

    def __init__(self, client: EndpointClient) -> None:
        self.client = client

    @property
    def url(self) -> str:
        return self.client.url

    def __repr__(self) -> str:
        return f"RemoteStore({self.client.url!r})"

    def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        read_only: bool = False,
        max_rows: int | None = None,
    ) -> QueryResult:
        """``POST /sql``. Without ``max_rows`` the whole answer is wanted: one cut short by
        the server's ``server.max_rows`` raises instead of silently differing."""
        answer = self.client.sql(sql, encode_parameters(parameters), max_rows or 0)
        types = tuple(str(t) for t in answer.get("types", ()))
        truncated = bool(answer.get("truncated"))
        if truncated and max_rows is None:
            raise StorageError(
                f"the answer is larger than the endpoint's server.max_rows ({self.url}); "
                "narrow the query or raise server.max_rows")
        return QueryResult(tuple(str(c) for c in answer.get("columns", ())), types,
                           decode_rows(types, answer.get("rows", [])), truncated)

    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        raise StorageError(
            f"grenswacht run holds the store ({self.url}): it takes writes only through its "
            f"routes (POST /ingest, POST /alerts/ack), not an insert into {table}")

    def close(self) -> None:
        return None


def open_store(settings: Settings, storage: str | None = None, *,
               migrate: bool = True) -> Storage | RemoteStore:
    """The store for a command: the running ``grenswacht run`` of ``settings.data_dir`` if one
    is up (unless ``storage`` names another DSN), else the store itself
    (``open_storage(storage or settings.storage_dsn)``). Raises ``GrenswachtError``."""
    if not storage or storage == settings.storage_dsn:
        client = local_endpoint(settings)
        if client is not None:
            return RemoteStore(client)
    return open_storage(storage or settings.storage_dsn, migrate=migrate)


def acknowledge_alert(store: Store, alert_id: str, by: str, comment: str) -> dict[str, str]:
    """Record who acknowledged an alert (a unique id prefix is enough) and return
    ``{"alert_id", "application"}``; through the endpoint for a :class:`RemoteStore`."""
    if isinstance(store, RemoteStore):
        return store.client.ack(alert_id, by, comment)
    alerts = AlertStore(store)
    found = alerts.get_alert(alert_id)
    if found is None:
        raise GrenswachtError(f"no single alert matches {alert_id!r}")
    alert, _ = found
    alerts.ack(alert.alert_id, by, comment)
    return {"alert_id": alert.alert_id, "application": alert.application}
