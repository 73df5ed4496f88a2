"""The bus seam: one small interface, two transports (``memory://`` and ``kafka://``).

Delivery guarantee: **at least once**. A message published and flushed is kept until every
consumer group has committed past it. A consumer sees a message again after a crash,
restart or rebalance unless it committed the offset after the message; consumers must
therefore commit only after their side effects are durable (the ClickHouse sink commits
after ``flush``), and sinks must be idempotent (ReplacingMergeTree keys plus insert
deduplication tokens). Within one partition, messages arrive in publish order; messages
with the same key go to the same partition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


RevokeCallback = Callable[[Sequence[TopicPartition]], None]


@dataclass(slots=True)
class Subscription:
    topics: tuple[str, ...]
    group: str
    on_revoke: RevokeCallback | None = field(default=None)


class Bus(ABC):
    """A producer and (after :meth:`subscribe`) one member of one consumer group.

    Constructors do no I/O; :func:`schemas.bus.open_bus` builds and connects one.
    """

    @abstractmethod
    def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue a message. It is durable only after :meth:`flush` returns."""

    @abstractmethod
    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued message is acknowledged; raise ``BusError`` if not."""

    @abstractmethod
    def subscribe(
        self, topics: Sequence[str], group: str, *, on_revoke: RevokeCallback | None = None
    ) -> None:
        """Join ``group`` for ``topics``. ``on_revoke`` runs before partitions are taken
        away, so the caller can flush its sink and commit (inside :meth:`poll`)."""

    @abstractmethod
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        """Return up to ``max_records`` messages, waiting at most ``timeout`` seconds."""

    @abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record that everything *before* ``offsets[tp]`` is done for this group."""

    @abstractmethod
    def seek_to_committed(self) -> None:
        """Rewind every assigned partition to the group's committed offset (replay
        after a failed flush)."""

    def lag(self) -> dict[TopicPartition, int]:
        """Messages behind the end of each assigned partition, as far as this member
        knows without a network round trip (empty when it cannot tell)."""
        return {}

    @abstractmethod
    def close(self) -> None:
        """Flush pending publishes and leave the group. Idempotent."""

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def next_offsets(messages: Sequence[Message]) -> dict[TopicPartition, int]:
    """The offsets to commit after ``messages`` are done: last offset + 1 per partition."""
    out: dict[TopicPartition, int] = {}
    for message in messages:
        tp = message.topic_partition
        if message.offset + 1 > out.get(tp, -1):
            out[tp] = message.offset + 1
    return out
