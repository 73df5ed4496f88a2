"""The memory bus keeps memory bounded without losing what a group has not read."""

from __future__ import annotations

from schemas import topics
from schemas.bus import TopicPartition, next_offsets, open_bus
from schemas.bus.memory import RETAIN_COMMITTED_BYTES, broker_for

BLOB = b"x" * 100_000


def _kept(name: str, topic: str) -> int:
    broker = broker_for(name)
    return sum(len(m.value) for p in range(broker.partitions_for(topic))
               for m in broker.read(TopicPartition(topic, p), 0, 10**9))


def test_unread_results_are_kept_until_read_and_committed_then_dropped() -> None:
    name = "retention-results"
    producer = open_bus(f"memory://{name}")
    count = 3 * RETAIN_COMMITTED_BYTES // len(BLOB)  # far more than the retained history
    for _ in range(count):
        producer.publish(topics.RESULTS, BLOB)  # nobody subscribed yet: all must stay
    consumer = open_bus(f"memory://{name}")
    consumer.subscribe([topics.RESULTS], "late")
    seen = []
    while batch := consumer.poll(max_records=500, timeout=0):
        seen.extend(batch)
        consumer.commit(next_offsets(batch))
    assert len(seen) == count
    assert _kept(name, topics.RESULTS) <= 3 * RETAIN_COMMITTED_BYTES


def test_an_unread_output_topic_keeps_only_recent_history() -> None:
    name = "retention-dlq"
    producer = open_bus(f"memory://{name}")
    for _ in range(20 * RETAIN_COMMITTED_BYTES // len(BLOB)):
        producer.publish(topics.DEAD_LETTERS, BLOB)
    assert _kept(name, topics.DEAD_LETTERS) <= 3 * (RETAIN_COMMITTED_BYTES + len(BLOB))
