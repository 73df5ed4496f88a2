"""One bus test suite, two transports: every test here runs on ``memory://`` and on the
real Apache Kafka broker (``kafka``-marked parameter)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from schemas.bus import Bus, Message, open_bus
from schemas.errors import BusError
from schemas.topics import TopicSpec

PARTITIONS = 3


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://bus-suite-{uuid.uuid4().hex[:8]}"
    bootstrap = request.getfixturevalue("kafka_broker")
    return f"kafka://{bootstrap}"


@pytest.fixture()
def topic() -> str:
    return f"test.bus.{uuid.uuid4().hex[:10]}"


BusFactory = Callable[[], Bus]


@pytest.fixture()
def open_test_bus(bus_url: str, topic: str) -> Iterator[BusFactory]:
    """Open buses on the parametrized transport; ``topic`` exists with 3 partitions."""
    opened: list[Bus] = []

    def factory() -> Bus:
        if bus_url.startswith("kafka://"):
            bus = open_bus(
                bus_url,
                topics=[TopicSpec(topic, PARTITIONS, 3_600_000)],
                # a session that survives a loaded machine: no rebalance but the test's own
                session_timeout_ms=15000,
                heartbeat_interval_ms=1000,
            )
        else:
            bus = open_bus(bus_url)
        opened.append(bus)
        return bus

    yield factory
    for bus in opened:
        try:
            bus.close()
        except BusError:
            pass


def poll_until(bus: Bus, count: int, *, timeout: float = 300.0, max_records: int = 500) -> list[
    Message
]:
    """Poll until ``count`` messages arrived (or fail after ``timeout`` seconds: a hang guard;
    joining a Kafka group on a loaded machine can take many seconds)."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        assert time.monotonic() < deadline, f"only {len(out)} of {count} messages arrived"
        out.extend(bus.poll(max_records=max_records, timeout=0.5))
    return out


def poll_quiet(bus: Bus, seconds: float) -> list[Message]:
    """Everything that arrives within ``seconds``."""
    out: list[Message] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.extend(bus.poll(timeout=0.3))
    return out
