"""The store seam every reader and writer of ClickHouse data goes through.

:class:`Store` is one small interface with two implementations:

* ``consumers.storage.Storage`` — the engine itself (chDB in-process, or a ClickHouse
  server over HTTP), opened with ``open_storage(dsn)``;
* ``grenswacht.store.RemoteStore`` — the same queries through the HTTP endpoint of a running
  ``grenswacht run`` (chDB allows one process per data directory), read-only.

``grenswacht.store.open_store(settings)`` picks one, so no command has to know whether
``run`` is up. Queries take bound parameters (``{name:Type}`` in the SQL, values in
``parameters``): never build SQL from input by string formatting.

``read_only=True`` runs the statement as untrusted SQL: exactly one read-only statement,
table functions from an allow-list, ``readonly=1`` at the engine (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class QueryResult:
    column_names: tuple[str, ...]
    column_types: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    """True when ``max_rows`` cut the answer short."""

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]


@runtime_checkable
class Store(Protocol):
    """Query with parameters, insert columnar data, close. Thread-safe implementations."""

    def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        read_only: bool = False,
        max_rows: int | None = None,
    ) -> QueryResult:
        """Run one query; ``max_rows`` caps the rows returned (``truncated`` tells)."""
        ...

    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        """Insert equal-length column lists; returns the rows inserted."""
        ...

    def close(self) -> None: ...
