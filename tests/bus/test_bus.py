"""The Bus contract (schemas/bus/base.py), on memory:// and on the real Kafka broker."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import pytest

from schemas.bus import TopicPartition, next_offsets
from schemas.bus.base import Message
from schemas.errors import BusClosed, BusError
from schemas.topics import MAX_MESSAGE_BYTES
from tests.bus.conftest import PARTITIONS, BusFactory, poll_quiet, poll_until

KEYS = [f"target-{i}.example.nl".encode() for i in range(7)]


def _publish_sequence(bus_factory: BusFactory, topic: str, count: int) -> None:
    producer = bus_factory()
    for seq in range(count):
        key = KEYS[seq % len(KEYS)]
        producer.publish(topic, f"{key.decode()}|{seq}".encode(), key=key,
                         headers=[("gw-source", b"test"), ("seq", str(seq).encode())])
    producer.flush(timeout=120)


def _sequence(message: Message) -> int:
    return int(message.value.split(b"|")[1])


def test_publish_poll_keeps_order_per_key(open_test_bus: BusFactory, topic: str) -> None:
    _publish_sequence(open_test_bus, topic, 210)
    consumer = open_test_bus()
    consumer.subscribe([topic], f"{topic}.order")
    messages = poll_until(consumer, 210)

    by_key: dict[bytes | None, list[Message]] = defaultdict(list)
    for message in messages:
        by_key[message.key].append(message)
    assert set(by_key) == set(KEYS)
    for key, received in by_key.items():
        sequences = [_sequence(m) for m in received]
        assert sequences == sorted(sequences), f"out of order for {key!r}"
        assert len(sequences) == 30
        assert len({m.partition for m in received}) == 1, "one key, one partition"
        assert all(0 <= m.partition < PARTITIONS for m in received)
    first = messages[0]
    assert first.header("gw-source") == b"test"
    assert first.header("seq") == str(_sequence(first)).encode()
    assert first.timestamp_ms > 1_700_000_000_000
    offsets = defaultdict(list)
    for message in messages:
        offsets[message.partition].append(message.offset)
    for partition_offsets in offsets.values():
        assert partition_offsets == list(range(len(partition_offsets)))


def test_committed_offsets_are_where_the_group_resumes(
    open_test_bus: BusFactory, topic: str
) -> None:
    _publish_sequence(open_test_bus, topic, 60)
    first = open_test_bus()
    first.subscribe([topic], f"{topic}.resume")
    seen = poll_until(first, 60)
    first.commit(next_offsets(seen))
    first.close()

    producer = open_test_bus()
    for seq in range(60, 75):
        producer.publish(topic, f"late|{seq}".encode(), key=KEYS[seq % len(KEYS)])
    producer.flush()

    second = open_test_bus()
    second.subscribe([topic], f"{topic}.resume")
    after = poll_until(second, 15)
    after += poll_quiet(second, 1.0)
    assert sorted(_sequence(m) for m in after) == list(range(60, 75))

    # another group has committed nothing and starts at the beginning
    other = open_test_bus()
    other.subscribe([topic], f"{topic}.another-group")
    assert len(poll_until(other, 75)) == 75


def test_uncommitted_messages_are_redelivered_after_close(
    open_test_bus: BusFactory, topic: str
) -> None:
    _publish_sequence(open_test_bus, topic, 40)
    first = open_test_bus()
    first.subscribe([topic], f"{topic}.redeliver")
    seen = poll_until(first, 40)
    # commit only the first half of each partition
    half: dict[TopicPartition, int] = {}
    for message in seen:
        half.setdefault(message.topic_partition, 0)
    counts: dict[TopicPartition, int] = defaultdict(int)
    for message in seen:
        counts[message.topic_partition] += 1
    half = {tp: counts[tp] // 2 for tp in counts}
    first.commit(half)
    first.close()

    second = open_test_bus()
    second.subscribe([topic], f"{topic}.redeliver")
    again = poll_until(second, sum(counts[tp] - half[tp] for tp in counts))
    again += poll_quiet(second, 1.0)
    expected = {(m.partition, m.offset) for m in seen if m.offset >= half[m.topic_partition]}
    assert {(m.partition, m.offset) for m in again} == expected
    assert len(again) == len(expected), "redelivered once, not twice"


def test_seek_to_committed_replays_after_a_failed_flush(
    open_test_bus: BusFactory, topic: str
) -> None:
    _publish_sequence(open_test_bus, topic, 30)
    consumer = open_test_bus()
    consumer.subscribe([topic], f"{topic}.replay")
    seen = poll_until(consumer, 30)
    consumer.commit(next_offsets([m for m in seen if m.offset < 3]))
    assert poll_quiet(consumer, 0.5) == []
    consumer.seek_to_committed()
    replay = poll_until(consumer, len([m for m in seen if m.offset >= 3]))
    assert sorted((m.partition, m.offset) for m in replay) == sorted(
        (m.partition, m.offset) for m in seen if m.offset >= 3
    )


def test_rebalance_calls_on_revoke_and_nothing_is_lost_or_doubled(
    open_test_bus: BusFactory, topic: str
) -> None:
    """Conditions, not timing: the second member joins once the first has made progress,
    and more messages are published after the first member gave its partitions up, round
    by round until the second member got some, so its partitions have work whatever the
    load (it may join late, or drop out of the group and rejoin)."""
    total = 120  # published so far; more follow once the second member joined
    _publish_sequence(open_test_bus, topic, total)
    processed: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
    pending: dict[str, list[Message]] = {"a": [], "b": []}
    revoked: dict[str, list[list[TopicPartition]]] = {"a": [], "b": []}
    buses = {"a": open_test_bus(), "b": open_test_bus()}
    lock = threading.Lock()

    def on_revoke_for(name: str) -> Callable[[Sequence[TopicPartition]], None]:
        def on_revoke(partitions: Sequence[TopicPartition]) -> None:
            with lock:
                revoked[name].append(list(partitions))
                # the sink flushes its buffer, then commits before giving the partitions up
                done = pending[name]
                pending[name] = []
                processed[name].extend((m.partition, m.offset) for m in done)
            buses[name].commit(next_offsets(done))
        return on_revoke

    stop = threading.Event()
    go = {"a": threading.Event(), "b": threading.Event()}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            go[name].wait()
            bus = buses[name]
            bus.subscribe([topic], f"{topic}.rebalance", on_revoke=on_revoke_for(name))
            while not stop.is_set():
                batch = bus.poll(max_records=4, timeout=0.2)
                with lock:
                    pending[name].extend(batch)
                    done = pending[name] if len(pending[name]) >= 8 else []
                    if done:
                        pending[name] = []
                        processed[name].extend((m.partition, m.offset) for m in done)
                if done:
                    bus.commit(next_offsets(done))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def seen() -> set[tuple[int, int]]:
        with lock:
            return set(processed["a"] + processed["b"] + [
                (m.partition, m.offset) for m in pending["a"] + pending["b"]])

    def wait_for(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 120
        while not condition() and not errors:
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            time.sleep(0.05)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    try:
        go["a"].set()
        wait_for(lambda: len(processed["a"]) >= 8, "the first member made progress")
        go["b"].set()
        wait_for(lambda: bool(revoked["a"]), "the first member was asked to give up")
        # more work in small rounds until the second member got some: under load it may
        # join late or drop out of the group and rejoin; the first member must not take
        # every message before it is back (a condition, not a pause)
        producer = open_test_bus()
        deadline = time.monotonic() + 120
        while not errors:
            for _ in range(12):
                key = KEYS[total % len(KEYS)]
                producer.publish(topic, f"{key.decode()}|{total}".encode(), key=key)
                total += 1
            producer.flush(timeout=120)
            with lock:
                second_has_work = bool(processed["b"] or pending["b"])
            if second_has_work and total >= 240:
                break
            assert time.monotonic() < deadline, "the second member never got a partition"
            time.sleep(0.2)
        wait_for(lambda: len(seen()) >= total, "every message was seen")
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a member did not stop"
    assert not errors, errors
    everything = processed["a"] + processed["b"] + [
        (m.partition, m.offset) for m in pending["a"] + pending["b"]]
    assert revoked["a"][0] == sorted(TopicPartition(topic, p) for p in range(PARTITIONS))
    assert len(everything) == total, "a message was lost or processed twice"
    assert len(set(everything)) == total
    assert processed["b"] or pending["b"], "the second member got no partition"


def test_oversized_message_is_refused_and_the_bus_still_works(
    open_test_bus: BusFactory, topic: str
) -> None:
    bus = open_test_bus()
    with pytest.raises(BusError) as info:
        bus.publish(topic, b"x" * (MAX_MESSAGE_BYTES + 1), key=b"big")
    assert not isinstance(info.value, BusClosed)
    assert str(MAX_MESSAGE_BYTES) in str(info.value)
    bus.publish(topic, b"x" * (MAX_MESSAGE_BYTES - 1000), key=b"almost-big")
    bus.flush(timeout=120)
    consumer = open_test_bus()
    consumer.subscribe([topic], f"{topic}.big")
    [message] = poll_until(consumer, 1)
    assert len(message.value) == MAX_MESSAGE_BYTES - 1000


def test_a_closed_bus_refuses_everything(open_test_bus: BusFactory, topic: str) -> None:
    bus = open_test_bus()
    bus.subscribe([topic], f"{topic}.closed")
    bus.close()
    bus.close()  # idempotent
    with pytest.raises(BusClosed):
        bus.publish(topic, b"late")
    with pytest.raises(BusClosed):
        bus.flush()
    with pytest.raises(BusClosed):
        bus.poll()
    with pytest.raises(BusClosed):
        bus.commit({TopicPartition(topic, 0): 1})
    with pytest.raises(BusClosed):
        bus.subscribe([topic], f"{topic}.again")
    other = open_test_bus()
    with pytest.raises(BusError):
        other.poll()  # poll before subscribe
    with other:
        other.publish(topic, b"context manager closes", key=b"k")
    with pytest.raises(BusClosed):
        other.publish(topic, b"after with")


def test_a_joining_member_never_reads_what_the_old_owner_has_not_given_up(
    open_test_bus: BusFactory, topic: str
) -> None:
    _publish_sequence(open_test_bus, topic, 30)
    first, second = open_test_bus(), open_test_bus()
    in_hand: list[Message] = []

    given_up: list[list[TopicPartition]] = []

    def give_up(partitions: Sequence[TopicPartition]) -> None:
        first.commit(next_offsets(in_hand))  # "flushed", so committed before giving up
        given_up.append(list(partitions))

    first.subscribe([topic], f"{topic}.handover", on_revoke=give_up)
    in_hand.extend(poll_until(first, 30))
    second.subscribe([topic], f"{topic}.handover")
    # the newcomer polls first, while the old owner still holds everything uncommitted
    stolen = second.poll(timeout=0.5)
    deadline = time.monotonic() + 120  # a rebalance on a loaded machine; asserted below
    while time.monotonic() < deadline and not given_up:
        stolen += first.poll(timeout=0.2)
        stolen += second.poll(timeout=0.2)
    stolen += first.poll(timeout=0.2) + poll_quiet(second, 1.5)
    assert given_up, "the old owner was never asked to give partitions up"
    assert stolen == [], "the new member read messages the old owner had not committed"


def test_lag_counts_what_is_left_to_read(open_test_bus: BusFactory, topic: str) -> None:
    _publish_sequence(open_test_bus, topic, 60)
    consumer = open_test_bus()
    consumer.subscribe([topic], f"{topic}.lag")
    read = poll_until(consumer, 60)
    assert len(read) == 60
    lag = consumer.lag()
    # every assigned partition is read to its end (Kafka may not know a partition's end
    # before it fetched from it: such partitions are left out, never guessed)
    assert lag and set(lag.values()) == {0}
    assert all(tp.topic == topic for tp in lag)
