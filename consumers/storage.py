"""The ClickHouse seam: ``open_storage("chdb:///path" | "http(s)://…")``.

This is the only module that imports clickhouse-connect; its exceptions become
:class:`~schemas.errors.StorageError` here and nowhere else.

Inserts are columnar (clickhouse-connect's Native format, whose column serialisers are
compiled), one list per column. An insert may carry
a deduplication token: ClickHouse then ignores a second insert with the same token into
the same table (``non_replicated_deduplication_window`` on every table), which is how a
batch replayed after a crash leaves no duplicate block. ReplacingMergeTree natural keys
catch the rest (read with ``FINAL``).

chDB allows one engine per process and one process per data directory: a second
``open_storage`` of a chDB path in the same process returns a handle on the same client.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from schemas.errors import (
    ConfigError,
    QueryError,
    RowsRejected,
    StorageError,
    StorageUnavailable,
)

MIGRATIONS_TABLE = "schema_migrations"
_READ_ONLY_PREFIX = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)


@dataclass(frozen=True, slots=True)
class QueryResult:
    column_names: tuple[str, ...]
    column_types: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every DDL file in ``schemas/clickhouse``, in name order."""
    folder = resources.files("schemas") / "clickhouse"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, (folder / name).read_text(encoding="utf-8")) for name in names]


def split_statements(sql: str) -> list[str]:
    """Split a DDL file on ``;`` at line ends, dropping ``--`` comment lines."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]


_CODE = re.compile(r"\bCode:\s*(\d+)")
# ClickHouse error codes (src/Common/ErrorCodes.cpp) that mean "not now": the store is
# down, full, out of memory, overloaded or cannot reach its Keeper. Retried with backoff.
_BACKPRESSURE_CODES = frozenset({
    74, 75,  # CANNOT_READ/WRITE_FROM_FILE_DESCRIPTOR (I/O errors, disk full)
    159, 209, 210,  # TIMEOUT_EXCEEDED, SOCKET_TIMEOUT, NETWORK_ERROR
    202, 203,  # TOO_MANY_SIMULTANEOUS_QUERIES, NO_FREE_CONNECTION
    225, 242, 999,  # NO_ZOOKEEPER, TABLE_IS_READ_ONLY (replica lost Keeper), KEEPER_EXCEPTION
    236, 394,  # ABORTED, QUERY_WAS_CANCELLED
    241, 243, 252,  # MEMORY_LIMIT_EXCEEDED, NOT_ENOUGH_SPACE, TOO_MANY_PARTS
    319, 425,  # UNKNOWN_STATUS_OF_INSERT, SYSTEM_ERROR
})
# codes that blame the rows: a value that does not parse or fit its column
_DATA_CODES = frozenset({6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 131, 321})
_BACKPRESSURE_TEXT = (
    "connection", "timed out", "timeout", "refused", "too many", "memory limit",
    "unavailable", "no space left", "not enough space", "cannot reserve",
)
_DATA_TEXT = ("unable to create native array", "error serializing", "unable to convert")


def _map_error(exc: Exception, what: str) -> StorageError:
    """One classification of every client error: backpressure (retry later), rows that
    cannot be stored (never retried), or anything else (a wrong or refused query)."""
    text = str(exc)
    lowered = text.lower()
    match = _CODE.search(text)
    code = int(match.group(1)) if match else None
    client_data_error = type(exc).__name__ == "DataError" or any(
        marker in lowered for marker in _DATA_TEXT)
    if code in _DATA_CODES or (code is None and client_data_error):
        return RowsRejected(f"{what}: {text[:2000]}")
    if code in _BACKPRESSURE_CODES or (
        code is None and any(marker in lowered for marker in _BACKPRESSURE_TEXT)
    ):
        return StorageUnavailable(f"{what}: {text[:500]}", retry_after=1.0)
    return QueryError(f"{what}: {text[:2000]}")


class Storage:
    """A connected ClickHouse store. Thread-safe (calls are serialised)."""

    def __init__(self, dsn: str, client: Any) -> None:
        self.dsn = dsn
        self._client = client
        self._lock = threading.RLock()
        self._closed = False

    @property
    def is_embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    def migrate(self, *, cluster: str | None = None, database: str | None = None) -> list[str]:
        """Apply every DDL file not yet recorded; return the names applied now. With
        ``cluster``, the replicated + distributed variants (consumers/ddl_cluster.py)."""
        from consumers.ddl_cluster import ClusterTarget, cluster_migration, cluster_statements

        target = ClusterTarget(cluster, database) if cluster else None
        ledger = (
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY name"
        )
        for statement in cluster_statements([ledger], target) if target else [ledger]:
            self.command(statement)
        done = {row[0] for row in self.query(
            f"SELECT name FROM {MIGRATIONS_TABLE}"  # noqa: S608 - a constant, no input
        ).rows}
        applied = []
        for name, sql in migration_files():
            if name in done:
                continue
            statements = cluster_migration(sql, target) if target else split_statements(sql)
            for statement in statements:
                self.command(statement)
            self.insert(MIGRATIONS_TABLE, {"name": [name]})
            applied.append(name)
        return applied

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        with self._lock:
            try:
                return self._client.command(sql, parameters=parameters)
            except Exception as exc:  # noqa: BLE001 - the seam maps every client error
                raise _map_error(exc, "command failed") from exc

    def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        read_only: bool = False,
        max_rows: int | None = None,
    ) -> QueryResult:
        """Run a query. ``read_only`` refuses anything but SELECT-like statements (the
        check is a first line; ClickHouse ``readonly=2`` is the second on servers)."""
        if read_only and not _READ_ONLY_PREFIX.match(sql):
            raise QueryError("only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS are allowed")
        settings: dict[str, Any] = {}
        if read_only and not self.is_embedded:
            settings["readonly"] = 2
        if max_rows is not None:
            settings["max_result_rows"] = max_rows
            settings["result_overflow_mode"] = "break"
        with self._lock:
            try:
                result = self._client.query(sql, parameters=parameters, settings=settings)
            except Exception as exc:  # noqa: BLE001
                raise _map_error(exc, "query failed") from exc
        return QueryResult(
            tuple(result.column_names),
            tuple(t.name for t in result.column_types),
            [tuple(row) for row in result.result_rows],
        )

    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        """Insert columnar data (equal-length lists per column). Returns rows inserted."""
        names = list(columns)
        if not names:
            return 0
        count = len(columns[names[0]])
        if count == 0:
            return 0
        settings: dict[str, Any] = {}
        if dedup_token is not None:
            settings["insert_deduplication_token"] = f"{table}:{dedup_token}"
            settings["insert_deduplicate"] = 1
        with self._lock:
            try:
                self._client.insert(
                    table,
                    [columns[name] for name in names],
                    column_names=names,
                    column_oriented=True,
                    settings=settings,
                )
            except Exception as exc:  # noqa: BLE001
                raise _map_error(exc, f"insert into {table} failed") from exc
        return count

    def ping(self) -> bool:
        with self._lock:
            try:
                return bool(self._client.ping())
            except Exception:  # noqa: BLE001
                return False

    def close(self) -> None:
        # chDB: the engine lives as long as the process; closing a handle must not tear
        # it down under other handles of the same path.
        self._closed = True


_CHDB_CLIENTS: dict[str, Any] = {}
_CHDB_LOCK = threading.Lock()


def _chdb_path(dsn: str) -> str:
    parts = urlsplit(dsn)
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    if not path or path == "/":
        raise ConfigError("chdb DSN needs a directory: chdb:///absolute/path")
    return path


def open_storage(dsn: str, *, migrate: bool = True) -> Storage:
    """Open ``chdb:///path`` (embedded, directory created) or ``http(s)://…`` (server)."""
    import clickhouse_connect

    scheme = urlsplit(dsn).scheme
    try:
        if scheme == "chdb":
            path = _chdb_path(dsn)
            Path(path).mkdir(parents=True, exist_ok=True)
            with _CHDB_LOCK:
                client = _CHDB_CLIENTS.get(path)
                if client is None:
                    if _CHDB_CLIENTS:
                        other = next(iter(_CHDB_CLIENTS))
                        raise ConfigError(
                            f"chDB allows one data directory per process; {other} is open, "
                            f"{path} was asked for"
                        )
                    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
                    _CHDB_CLIENTS[path] = client
        elif scheme in ("http", "https", "clickhouse", "clickhouses"):
            client = clickhouse_connect.get_client(dsn=dsn, connect_timeout=10)
        else:
            raise ConfigError(f"unknown storage DSN {dsn!r}: use chdb:///path or http(s)://host")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        if "lock" in text.lower() or "already" in text.lower():
            raise StorageUnavailable(
                f"the chDB directory of {dsn} is in use by another process "
                "(is `grenswacht run` up? then use its endpoint)",
                retry_after=5.0,
            ) from exc
        raise _map_error(exc, f"cannot open {dsn}") from exc
    storage = Storage(dsn, client)
    if migrate:
        storage.migrate()
    return storage


def dsn_tag(dsn: str) -> str:
    """A DSN with any password removed, safe for logs."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return dsn
