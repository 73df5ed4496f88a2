"""``memory://NAME``: the in-process bus of the embedded mode, and the fake for tests.

Every :class:`MemoryBus` opened with the same ``NAME`` in one process shares one
:class:`MemoryBroker`: topics with partitions, consumer groups with committed offsets, and
partition assignment across the members of a group (rebalanced when members join or
leave, with ``on_revoke`` called first, as Kafka does). Nothing survives the process; the
embedded mode relies on ClickHouse for durability and re-reads its inputs after a crash.

Retention (memory stays bounded however long the process runs): a message is kept until
every group that subscribed to its topic has committed past it, and then for as long as the
committed messages of its partition stay within :data:`RETAIN_COMMITTED_BYTES` (so a group
that subscribes a little later still sees recent history). An output topic
(:data:`schemas.topics.OUTPUT_TOPICS`: findings, alerts, dead letters, requests) that no group
subscribed to keeps that many bytes per partition; any other topic keeps every message
until a group has read and committed it. A group whose committed offset is older than the
oldest kept message starts at the oldest kept one.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from schemas.bus.base import Bus, Message, RevokeCallback, Subscription, TopicPartition
from schemas.errors import BusClosed, BusError
from schemas.topics import MAX_MESSAGE_BYTES, OUTPUT_TOPICS

DEFAULT_PARTITIONS = 3
RETAIN_COMMITTED_BYTES = 8 * 1024 * 1024
"""Bytes of already committed messages kept per partition."""


@dataclass
class _Group:
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    members: list[MemoryBus] = field(default_factory=list)
    generation: int = 0


class MemoryBroker:
    """Shared state of one ``memory://NAME``. Thread-safe."""

    def __init__(self, partitions: int = DEFAULT_PARTITIONS) -> None:
        self.default_partitions = partitions
        self._logs: dict[str, list[list[Message]]] = {}
        self._base: dict[str, list[int]] = {}  # offset of each partition's first kept message
        self._readers: dict[str, set[str]] = {}  # groups that subscribed to each topic
        self._bytes: dict[str, list[int]] = {}  # bytes kept per partition
        self._groups: dict[str, _Group] = {}
        self.lock = threading.Condition()

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        with self.lock:
            if topic not in self._logs:
                count = partitions or self.default_partitions
                self._logs[topic] = [[] for _ in range(count)]
                self._base[topic] = [0] * count
                self._bytes[topic] = [0] * count

    def partitions_for(self, topic: str) -> int:
        self.create_topic(topic)
        return len(self._logs[topic])

    def append(
        self, topic: str, key: bytes | None, value: bytes, headers: tuple[tuple[str, bytes], ...]
    ) -> Message:
        with self.lock:
            self.create_topic(topic)
            parts = self._logs[topic]
            if key is None:
                index = sum(len(p) for p in parts) % len(parts)
            else:
                index = zlib.crc32(key) % len(parts)
            log = parts[index]
            offset = self._base[topic][index] + len(log)
            message = Message(topic, index, offset, key, value, headers, int(time.time() * 1000))
            log.append(message)
            self._bytes[topic][index] += len(value)
            if (topic in OUTPUT_TOPICS and not self._readers.get(topic)
                    and self._bytes[topic][index] > RETAIN_COMMITTED_BYTES):
                # nobody reads it (yet): keep only recent history (half, so not every append
                # trims again)
                self.trim(topic, keep=RETAIN_COMMITTED_BYTES // 2)
            self.lock.notify_all()
            return message

    def read(self, tp: TopicPartition, offset: int, limit: int) -> list[Message]:
        log = self._logs.get(tp.topic)
        if log is None or tp.partition >= len(log):
            return []
        start = max(offset - self._base[tp.topic][tp.partition], 0)
        return log[tp.partition][start : start + limit]

    def end_offset(self, tp: TopicPartition) -> int:
        with self.lock:
            log = self._logs.get(tp.topic)
            if log is None:
                return 0
            return self._base[tp.topic][tp.partition] + len(log[tp.partition])

    def subscribed(self, topic: str, group: str) -> None:
        with self.lock:
            self._readers.setdefault(topic, set()).add(group)

    def trim(self, topic: str, keep: int = RETAIN_COMMITTED_BYTES) -> None:
        """Forget messages every subscribed group has committed, beyond ``keep`` bytes of
        them per partition."""
        with self.lock:
            readers = self._readers.get(topic)
            if topic not in self._logs or (not readers and topic not in OUTPUT_TOPICS):
                return
            for index, log in enumerate(self._logs[topic]):
                tp = TopicPartition(topic, index)
                base = self._base[topic][index]
                floor = (min(self.group(g).committed.get(tp, 0) for g in readers) if readers
                         else base + len(log))
                done = min(floor - base, len(log))
                if done <= 0:
                    continue
                kept = 0
                cut = done
                while cut > 0 and kept + len(log[cut - 1].value) <= keep:
                    cut -= 1
                    kept += len(log[cut].value)
                if cut > 0:
                    self._bytes[topic][index] -= sum(len(m.value) for m in log[:cut])
                    del log[:cut]
                    self._base[topic][index] = base + cut

    def group(self, name: str) -> _Group:
        return self._groups.setdefault(name, _Group())

    def committed(self, group: str, tp: TopicPartition) -> int:
        with self.lock:
            return self.group(group).committed.get(tp, 0)

    def lag(self, group: str, topic: str) -> int:
        """Messages in ``topic`` not yet committed by ``group``."""
        with self.lock:
            self.create_topic(topic)
            total = 0
            for index, log in enumerate(self._logs[topic]):
                end = self._base[topic][index] + len(log)
                total += end - self.group(group).committed.get(TopicPartition(topic, index), 0)
            return total


_BROKERS: dict[str, MemoryBroker] = {}
_BROKERS_LOCK = threading.Lock()


def broker_for(name: str) -> MemoryBroker:
    with _BROKERS_LOCK:
        return _BROKERS.setdefault(name or "default", MemoryBroker())


class MemoryBus(Bus):
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self._subscription: Subscription | None = None
        self._assigned: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._generation = -1
        self._closed = False
        self._next_partition = 0

    # -- producer -------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        if self._closed:
            raise BusClosed("publish on a closed bus")
        if len(value) > MAX_MESSAGE_BYTES:
            raise BusError(f"message of {len(value)} bytes exceeds {MAX_MESSAGE_BYTES} bytes")
        self.broker.append(topic, key, value, tuple(headers))

    def flush(self, timeout: float | None = None) -> None:
        if self._closed:
            raise BusClosed("flush on a closed bus")

    # -- consumer -------------------------------------------------------------------
    def subscribe(
        self, topics: Sequence[str], group: str, *, on_revoke: RevokeCallback | None = None
    ) -> None:
        if self._closed:
            raise BusClosed("subscribe on a closed bus")
        with self.broker.lock:
            for topic in topics:
                self.broker.create_topic(topic)
                self.broker.subscribed(topic, group)
            self._subscription = Subscription(tuple(topics), group, on_revoke)
            state = self.broker.group(group)
            state.members.append(self)
            state.generation += 1

    def _rebalance_if_needed(self) -> None:
        sub = self._subscription
        if sub is None:
            raise BusError("poll before subscribe")
        state = self.broker.group(sub.group)
        if state.generation == self._generation:
            return
        if self._assigned and sub.on_revoke is not None:
            sub.on_revoke(list(self._assigned))
        with self.broker.lock:
            members = [m for m in state.members if not m._closed]
            me = members.index(self)
            every = [
                TopicPartition(t, p)
                for t in sub.topics
                for p in range(self.broker.partitions_for(t))
            ]
            self._assigned = [tp for i, tp in enumerate(every) if i % len(members) == me]
            # positions are taken from the committed offsets only once the previous owner
            # has given the partition up (see _held_elsewhere), as Kafka's rebalance does
            self._positions = {}
            self._generation = state.generation

    def _held_elsewhere(self, tp: TopicPartition, state: _Group) -> bool:
        """True while another member of an older generation still holds ``tp`` (it has not
        polled since the rebalance, so it has not run ``on_revoke`` and committed yet)."""
        return any(
            member is not self
            and not member._closed
            and member._generation != state.generation
            and tp in member._assigned
            for member in state.members
        )

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        if self._closed:
            raise BusClosed("poll on a closed bus")
        if self._subscription is None:
            raise BusError("poll before subscribe")
        deadline = time.monotonic() + timeout
        while True:
            self._rebalance_if_needed()
            out: list[Message] = []
            with self.broker.lock:
                state = self.broker.group(self._subscription.group)
                count = len(self._assigned)
                for i in range(count):
                    # rotate the start so no partition starves
                    tp = self._assigned[(self._next_partition + i) % count]
                    if tp not in self._positions:
                        if self._held_elsewhere(tp, state):
                            continue
                        self._positions[tp] = state.committed.get(tp, 0)
                    batch = self.broker.read(tp, self._positions[tp], max_records - len(out))
                    if batch:
                        self._positions[tp] = batch[-1].offset + 1
                        out.extend(batch)
                    if len(out) >= max_records:
                        break
                self._next_partition += 1
                if out:
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self.broker.lock.wait(min(remaining, 0.05))

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._closed:
            raise BusClosed("commit on a closed bus")
        sub = self._subscription
        if sub is None:
            raise BusError("commit before subscribe")
        with self.broker.lock:
            committed = self.broker.group(sub.group).committed
            for tp, offset in offsets.items():
                if offset > committed.get(tp, 0):
                    committed[tp] = offset
            for topic in {tp.topic for tp in offsets}:
                self.broker.trim(topic)

    def seek_to_committed(self) -> None:
        sub = self._subscription
        if sub is None:
            return
        with self.broker.lock:
            self._positions.clear()  # re-read from the committed offsets on the next poll

    def lag(self) -> dict[TopicPartition, int]:
        with self.broker.lock:
            return {tp: self.broker.end_offset(tp) - self._positions.get(tp, 0)
                    for tp in self._assigned}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        sub = self._subscription
        if sub is not None:
            with self.broker.lock:
                state = self.broker.group(sub.group)
                if self in state.members:
                    state.members.remove(self)
                state.generation += 1
                self.broker.lock.notify_all()
