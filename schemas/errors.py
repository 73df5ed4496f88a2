"""One exception tree for all of grenswacht.

Foreign exceptions are mapped once, at the seam where the foreign library is called
(kafka-python in ``schemas/bus/kafka.py``, clickhouse-connect in ``consumers/storage.py``,
cousteau/requests in ``scheduler/atlas.py``, Graphviz's ``dot`` in
``consumers/graph/draw.py``). Everything above the seams sees only these::

    GrenswachtError
    ├── ConfigError                  bad settings, bad inventory file (says where)
    ├── InputError                   a file the user gave cannot be read (names file and line)
    ├── ResultError                  one measurement result cannot be used (-> dead letter)
    │   ├── MalformedResult          not JSON, not an object, missing or absurd fields
    │   └── UnsupportedResult        valid JSON, but a type we do not ingest
    ├── BusError                     the message bus failed
    │   ├── BusClosed                used after close()
    │   └── BusBackpressure          try again after ``retry_after`` seconds
    ├── StorageError                 ClickHouse failed
    │   ├── StorageUnavailable       cannot reach, open or write the store now (down, disk
    │   │                            full, out of memory, too many parts); retry later
    │   └── QueryError               the query itself is wrong or not allowed
    │       └── RowsRejected         ClickHouse cannot take these rows (a value does not fit
    │                                its column): permanent for them, never retried
    ├── AtlasAPIError                the RIPE Atlas API said no
    │   ├── AtlasAuthError           key missing, invalid or without a permission
    │   └── AtlasRateLimited         HTTP 429 / 5xx, with ``retry_after``
    ├── ProbeError                   a self-hosted measurement could not run
    │   ├── TargetNotAllowed         the target is outside the allow-list
    │   └── InvalidTaskOptions       a probe task's options are unknown or nonsense
    └── RenderError                  a path picture cannot be drawn (Graphviz missing,
                                     failed or timed out; the graph too large)
"""

from __future__ import annotations


class GrenswachtError(Exception):
    """Base of every error grenswacht raises on purpose."""


class ConfigError(GrenswachtError):
    """Settings or an inventory file are invalid; the message says where."""


class InputError(GrenswachtError):
    """A user-supplied file cannot be read at all (message names the file and line)."""


class ResultError(GrenswachtError):
    """One measurement result cannot be normalised. ``reason`` is a short machine code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class MalformedResult(ResultError):
    """Not JSON, not an object, missing required keys, or absurd values."""


class UnsupportedResult(ResultError):
    """Well-formed, but a result type grenswacht does not ingest."""


class BusError(GrenswachtError):
    """The message bus failed."""


class BusClosed(BusError):
    """The bus was used after ``close()``."""


class BackpressureMixin:
    retry_after: float


class BusBackpressure(BusError, BackpressureMixin):
    """The bus cannot take more now; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(GrenswachtError):
    """ClickHouse failed."""


class StorageUnavailable(StorageError, BackpressureMixin):
    """The store cannot be reached or opened now; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueryError(StorageError):
    """The query is invalid or not allowed (for example a write on a read-only path)."""


class RowsRejected(QueryError):
    """The rows of an insert cannot be stored as they are (a value does not fit its column,
    a type mismatch): retrying cannot help; the sink isolates and dead-letters them."""


class AtlasAPIError(GrenswachtError):
    """The RIPE Atlas API refused or failed a request."""


class AtlasAuthError(AtlasAPIError):
    """The API key is missing, invalid, or lacks a permission (named in the message)."""


class AtlasRateLimited(AtlasAPIError, BackpressureMixin):
    """HTTP 429 or 5xx from RIPE Atlas; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProbeError(GrenswachtError):
    """A self-hosted measurement could not be run."""


class TargetNotAllowed(ProbeError):
    """The destination is outside the agent's allow-list (or inside its deny-list)."""


class InvalidTaskOptions(ProbeError):
    """A probe task names an unknown option or gives one a value that makes no sense."""


class RenderError(GrenswachtError):
    """A path picture cannot be drawn: Graphviz is missing, failed or timed out, or the
    graph is larger than a picture is drawn from (the message says which and what to do)."""
