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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from consumers.sql_guard import check_plain_form, check_statement
from schemas.clickhouse import MIGRATIONS_TABLE, migration_files, split_statements
from schemas.clickhouse.cluster import ClusterTarget, cluster_migration, cluster_statements
from schemas.errors import (
    ConfigError,
    QueryError,
    RowsRejected,
    StorageError,
    StorageUnavailable,
)
from schemas.redact import redact
from schemas.store import QueryResult

__all__ = ["MIGRATIONS_TABLE", "QueryResult", "Storage", "open_storage"]

READ_ONLY_TIMEOUT_S = 120
"""Longest a read-only (untrusted) query may run (``max_execution_time``)."""


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
    cannot be stored (never retried), or anything else (a wrong or refused query). The
    text is redacted (a DSN with a password may be part of it)."""
    text = redact(exc)
    what = redact(what)
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

    def __init__(self, dsn: str, client: Any,
                 read_only_client: Callable[[], Any] | None = None) -> None:
        self.dsn = dsn
        self._client = client
        self._lock = threading.RLock()
        self._closed = False
        self._open_read_only = read_only_client
        self._read_only: Any = None
        self._read_only_lock = threading.RLock()
        self._table_functions: frozenset[str] | None = None

    def __repr__(self) -> str:
        return f"Storage({redact(self.dsn)!r})"

    @property
    def safe_dsn(self) -> str:
        """The DSN with any credential masked (for logs, status, errors)."""
        return redact(self.dsn)

    @property
    def is_embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    def migrate(self, *, cluster: str | None = None, database: str | None = None) -> list[str]:
        """Apply every DDL file not yet recorded; return the names applied now. With
        ``cluster``, the replicated + distributed variants (schemas/clickhouse/cluster.py)."""
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
        """Run a query with bound parameters (``{name:Type}``). ``read_only`` treats ``sql`` as
        untrusted: :meth:`check_read_only`, then a ``readonly=1`` session of the engine."""
        if read_only:
            streamable = self.check_read_only(sql)
            return self.run_read_only(sql, parameters, max_rows=max_rows, stream=streamable)
        settings: dict[str, Any] = {}
        if max_rows is not None:
            settings["max_result_rows"] = max_rows
            settings["result_overflow_mode"] = "break"
        with self._lock:
            try:
                result = self._client.query(sql, parameters=parameters, settings=settings)
            except Exception as exc:  # noqa: BLE001
                raise _map_error(exc, "query failed") from exc
        rows = [tuple(row) for row in result.result_rows]
        truncated = max_rows is not None and len(rows) > max_rows
        return QueryResult(
            tuple(result.column_names),
            tuple(t.name for t in result.column_types),
            rows[:max_rows] if max_rows is not None else rows,
            truncated,
        )

    def check_read_only(self, sql: str) -> bool:
        """Refuse ``sql`` unless it is exactly one read-only statement whose table functions
        are allowed, judged on ClickHouse's own parse tree (consumers/sql_guard.py). The text
        reaches the engine only as a bound parameter here: nothing runs. Returns whether the
        statement is a SELECT (its rows can be streamed; SHOW, EXPLAIN, … cannot)."""
        if not sql.strip():
            raise QueryError("empty query")
        try:
            tree = self._read_only_call(
                lambda c: c.query("SELECT parseQueryToJSON({q:String})", parameters={"q": sql}))
        except QueryError as exc:
            if "does not support JSON serialization" not in str(exc):
                raise QueryError(f"not one valid statement: {_engine_message(exc)}") from exc
            canonical = self._read_only_call(lambda c: c.query(
                "SELECT formatQuerySingleLine({q:String})", parameters={"q": sql}))
            check_plain_form(str(canonical.result_rows[0][0]))
            return False
        kind = check_statement(orjson.loads(tree.result_rows[0][0]),
                               table_functions=self.table_functions())
        return kind.startswith("Select")

    def table_functions(self) -> frozenset[str]:
        """The engine's table function names, lower case (cached)."""
        if self._table_functions is None:
            rows = self._read_only_call(
                lambda c: c.query("SELECT lower(name) FROM system.table_functions")).result_rows
            self._table_functions = frozenset(str(r[0]) for r in rows)
        return self._table_functions

    def run_read_only(self, sql: str, parameters: Mapping[str, Any] | None = None, *,
                      max_rows: int | None = None, stream: bool = True) -> QueryResult:
        """Run ``sql`` on the engine's ``readonly=1`` session, keeping at most ``max_rows``
        rows (a SELECT is streamed, so no more than a block beyond them is read). No statement
        check: call :meth:`query` with ``read_only=True`` (this is the engine-side line of
        defence, tested on its own)."""

        def run(client: Any) -> QueryResult:
            if not stream:
                result = client.query(sql, parameters=parameters,
                                      settings=self._read_only_settings)
                everything = [tuple(row) for row in result.result_rows]
                cut = max_rows is not None and len(everything) > max_rows
                return QueryResult(tuple(result.column_names),
                                   tuple(t.name for t in result.column_types),
                                   everything[:max_rows] if cut else everything, cut)
            rows: list[tuple[Any, ...]] = []
            truncated = False
            with client.query_row_block_stream(sql, parameters=parameters,
                                               settings=self._read_only_settings) as blocks:
                names = tuple(blocks.source.column_names)
                types = tuple(t.name for t in blocks.source.column_types)
                for block in blocks:
                    rows.extend(tuple(row) for row in block)
                    if max_rows is not None and len(rows) > max_rows:
                        truncated = True
                        del rows[max_rows:]
                        break
            return QueryResult(names, types, rows, truncated)

        result: QueryResult = self._read_only_call(run)
        return result

    @property
    def _read_only_settings(self) -> dict[str, Any]:
        # chDB: the read-only session was set readonly=1 once (sticky, see _open_read_only);
        # a server: HTTP is stateless, each query carries readonly=1
        return {} if self.is_embedded else {"readonly": 1}

    def _read_only_call(self, call: Callable[[Any], Any]) -> Any:
        with self._read_only_lock:
            if self._read_only is None:
                if self._open_read_only is None:
                    raise StorageError("this store has no read-only session")
                try:
                    self._read_only = self._open_read_only()
                except StorageError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    raise _map_error(exc, "cannot open the read-only session") from exc
            try:
                return call(self._read_only)
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise _map_error(exc, "query failed") from exc

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

    def insert_lines(
        self,
        table: str,
        lines: Sequence[bytes],
        *,
        fmt: str,
        settings: Mapping[str, Any] | None = None,
        dedup_token: str | None = None,
    ) -> int:
        """Insert text rows in ``fmt`` (one per line, e.g. ``JSONEachRow``): ClickHouse
        parses them itself. The token also deduplicates the blocks that the table's
        materialized views write (``deduplicate_blocks_in_dependent_materialized_views``).
        Returns the lines inserted."""
        if not lines:
            return 0
        merged: dict[str, Any] = dict(settings or {})
        if dedup_token is not None:
            merged["insert_deduplication_token"] = f"{table}:{dedup_token}"
            merged["insert_deduplicate"] = 1
            merged["deduplicate_blocks_in_dependent_materialized_views"] = 1
        data = b"\n".join(lines) + b"\n"
        with self._lock:
            try:
                self._client.raw_insert(table, insert_block=data, fmt=fmt, settings=merged)
            except Exception as exc:  # noqa: BLE001
                raise _map_error(exc, f"insert into {table} failed") from exc
        return len(lines)

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


def _chdb_read_only(path: str) -> Callable[[], Any]:
    """A second chDB session on the same engine, made read-only for good: ``readonly=1`` in
    a session cannot be lowered again (``SET readonly = 0`` and ``SETTINGS readonly=0`` are
    refused by the engine). Limits are set before, as they cannot be changed after."""

    def open_session() -> Any:
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
        client.command(f"SET max_execution_time = {READ_ONLY_TIMEOUT_S}")
        client.command("SET readonly = 1")
        if str(client.query("SELECT getSetting('readonly')").result_rows[0][0]) != "1":
            raise StorageError("the chDB read-only session did not become readonly=1")
        return client

    return open_session


def open_storage(dsn: str, *, migrate: bool = True) -> Storage:
    """Open ``chdb:///path`` (embedded, directory created) or ``http(s)://…`` (server)."""
    import clickhouse_connect

    scheme = urlsplit(dsn).scheme
    read_only: Callable[[], Any] | None = None
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
            read_only = _chdb_read_only(path)
        elif scheme in ("http", "https", "clickhouse", "clickhouses"):
            client = clickhouse_connect.get_client(dsn=dsn, connect_timeout=10)
            read_only = lambda: client  # noqa: E731 - stateless HTTP: readonly=1 per query
        else:
            raise ConfigError(
                f"unknown storage DSN {redact(dsn)!r}: use chdb:///path or http(s)://host")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        if "lock" in text.lower() or "already" in text.lower():
            raise StorageUnavailable(
                f"the chDB directory of {redact(dsn)} is in use by another process "
                "(is `grenswacht run` up? then use its endpoint)",
                retry_after=5.0,
            ) from exc
        raise _map_error(exc, f"cannot open {dsn}") from exc
    storage = Storage(dsn, client, read_only)
    if migrate:
        storage.migrate()
    return storage


def _engine_message(exc: Exception) -> str:
    """The ClickHouse part of a mapped error ("query failed: Code: 62. DB::Exception: …")."""
    text = str(exc)
    start = text.find("DB::Exception:")
    return text[start + len("DB::Exception:"):].strip() if start >= 0 else text
