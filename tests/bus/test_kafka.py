"""What only the Kafka transport has: URLs, security settings, SCRAM on the real broker,
error mapping, and errors raised by on_revoke coming out of poll."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from schemas.bus import TopicPartition, next_offsets, open_bus
from schemas.bus.kafka import BusUnavailable, open_kafka_bus, parse_kafka_url
from schemas.bus.kafka_settings import KafkaSettings
from schemas.errors import BusError, ConfigError, StorageUnavailable
from schemas.topics import ALL_TOPICS, RESULTS, TopicSpec
from tests.bus.conftest import poll_until
from tools.kafka import broker

SECRET = "s3cret-" + uuid.uuid4().hex  # a made-up password for the validation tests


def test_kafka_urls_name_one_or_more_brokers() -> None:
    assert parse_kafka_url("kafka://127.0.0.1:9092") == ["127.0.0.1:9092"]
    assert parse_kafka_url("kafka://a.example:9093,b.example:9094") == [
        "a.example:9093", "b.example:9094"]
    assert parse_kafka_url("kafka://broker") == ["broker:9092"]
    for bad in ("kafka://", "kafka://host:port", "memory://x"):
        with pytest.raises(ConfigError):
            parse_kafka_url(bad)


def test_sasl_and_tls_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs sasl_mechanism"):
        KafkaSettings(security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="needs sasl_plain_username and sasl_plain_password"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512")
    with pytest.raises(ValueError, match="sasl_mechanism"):
        KafkaSettings.model_validate({"security_protocol": "SASL_SSL",
                                      "sasl_mechanism": "SCRAM-SHA-1",
                                      "sasl_plain_username": "u", "sasl_plain_password": "p"})
    with pytest.raises(ValueError, match="use SASL_PLAINTEXT or SASL_SSL"):
        KafkaSettings(sasl_mechanism="PLAIN", sasl_plain_username="u")
    with pytest.raises(ValueError, match="is not a readable file"):
        KafkaSettings(security_protocol="SSL", ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="go together"):
        (tmp_path / "client.pem").write_text("-----BEGIN CERTIFICATE-----\n")
        KafkaSettings(security_protocol="SSL", ssl_certfile=tmp_path / "client.pem")
    with pytest.raises(ValueError, match="use SSL or SASL_SSL"):
        KafkaSettings(ssl_cafile=tmp_path / "client.pem")
    with pytest.raises(ValueError, match="a third of session_timeout_ms"):
        KafkaSettings(session_timeout_ms=6000, heartbeat_interval_ms=3000)

    cafile = tmp_path / "ca.pem"
    cafile.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = KafkaSettings(
        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username="grenswacht", sasl_plain_password=SECRET, ssl_cafile=cafile,
    )
    options = settings.client_options()
    assert options["sasl_plain_password"] == SECRET
    assert options["ssl_cafile"] == str(cafile)
    assert options["ssl_check_hostname"] is True
    assert SECRET not in repr(settings), "secrets must not show in logs"
    # the same checks reach users as ConfigError through open_bus
    with pytest.raises(ConfigError, match="needs sasl_mechanism"):
        open_bus("kafka://127.0.0.1:9", security_protocol="SASL_PLAINTEXT")


@pytest.mark.kafka
def test_unreachable_broker_is_bus_unavailable() -> None:
    started = time.monotonic()
    with pytest.raises(BusUnavailable) as info:
        open_kafka_bus("kafka://127.0.0.1:9", connect_timeout_ms=1500)
    assert info.value.retry_after > 0
    assert time.monotonic() - started < 120  # bounded, not a hang (not a timing assertion)


@pytest.mark.kafka
def test_opening_creates_the_grenswacht_topics(kafka_broker: str) -> None:
    partitions = 2
    bus = open_kafka_bus(f"kafka://{kafka_broker}", partitions={RESULTS: partitions})
    try:
        bus.subscribe([RESULTS], f"topics-{uuid.uuid4().hex[:6]}")
        # RESULTS may exist from an earlier test with the default count; all must exist
        assert bus.ensure_topics([TopicSpec(t, 1, 3_600_000) for t in ALL_TOPICS]) == []
        assert bus.poll(timeout=0.2) is not None
    finally:
        bus.close()


@pytest.mark.kafka
def test_scram_listener_of_the_real_broker(
    kafka_broker_state: tuple[str, broker.BrokerState | None],
) -> None:
    _, state = kafka_broker_state
    if state is None:
        pytest.skip("GRENSWACHT_TEST_KAFKA names host:port only; its SCRAM user is unknown")
    topic = f"test.scram.{uuid.uuid4().hex[:8]}"
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        settings = KafkaSettings(
            security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
            sasl_plain_username=state.scram_username,
            sasl_plain_password=state.scram_password,
        )
        with open_kafka_bus(f"kafka://{state.sasl_bootstrap}", settings=settings,
                            topics=[TopicSpec(topic, 1, 3_600_000)]) as bus:
            bus.publish(topic, mechanism.encode(), key=b"k")
            bus.flush()
    with open_kafka_bus(f"kafka://{state.sasl_bootstrap}", settings=settings) as consumer:
        consumer.subscribe([topic], f"{topic}.group")
        values = [m.value for m in poll_until(consumer, 2)]
    assert values == [b"SCRAM-SHA-256", b"SCRAM-SHA-512"]

    with pytest.raises(BusError):
        open_kafka_bus(f"kafka://{state.sasl_bootstrap}", settings=settings,
                       sasl_plain_password=SECRET, connect_timeout_ms=3000)


@pytest.mark.kafka
def test_an_error_in_on_revoke_comes_out_of_poll_unchanged(kafka_broker: str) -> None:
    topic = f"test.revoke-error.{uuid.uuid4().hex[:8]}"
    url = f"kafka://{kafka_broker}"
    spec = [TopicSpec(topic, 2, 3_600_000)]
    with open_kafka_bus(url, topics=spec) as producer:
        for i in range(10):
            producer.publish(topic, b"%d" % i, key=b"%d" % i)
        producer.flush()

    failures: list[Sequence[TopicPartition]] = []
    armed = threading.Event()  # fail the revocation the second member causes, no other

    def failing_flush(partitions: Sequence[TopicPartition]) -> None:
        if armed.is_set() and not failures:  # down once, then back
            failures.append(partitions)
            raise StorageUnavailable("ClickHouse is down", retry_after=2.0)

    # a session that survives a loaded machine: no rebalance but the one the test causes
    first = open_kafka_bus(url, topics=spec, session_timeout_ms=15000, heartbeat_interval_ms=1000)
    second = open_kafka_bus(url, topics=spec, session_timeout_ms=15000,
                            heartbeat_interval_ms=1000)
    try:
        first.subscribe([topic], f"{topic}.g", on_revoke=failing_flush)
        seen = poll_until(first, 10)
        armed.set()
        second.subscribe([topic], f"{topic}.g")
        deadline = time.monotonic() + 120
        with pytest.raises(StorageUnavailable, match="ClickHouse is down"):
            while time.monotonic() < deadline:
                second.poll(timeout=0.2)
                first.poll(timeout=0.2)
        first.seek_to_committed()  # what a consumer does after any failed flush
        # nothing was committed, so the group still owes all ten messages
        deadline = time.monotonic() + 120
        again: list[object] = []
        while time.monotonic() < deadline and len(again) < 10:
            again += second.poll(timeout=0.2) + first.poll(timeout=0.2)
        assert len(again) == 10, f"{len(again)} of 10 messages came back"
        assert next_offsets(seen)
    finally:
        first.close()
        second.close()


@pytest.mark.kafka
def test_a_consumer_call_kafka_python_never_wakes_is_given_up(
    kafka_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    """kafka-python 3.0.12 waits for a blocking call on its network thread without a
    timeout; upstream reports commits that waited for hours (dpkp/kafka-python#3121). Here
    a fetch waits on a future nobody resolves: the stall watch gives that poll up, and the
    member goes on consuming."""
    from kafka.future import Future as KafkaFuture

    topic = f"test.stall.{uuid.uuid4().hex[:8]}"
    url = f"kafka://{kafka_broker}"
    spec = [TopicSpec(topic, 1, 3_600_000)]
    bus = open_kafka_bus(url, topics=spec, session_timeout_ms=15000, heartbeat_interval_ms=1000,
                         request_timeout_ms=5000, client_stall_timeout_ms=6000)
    try:
        for i in range(20):
            bus.publish(topic, b"%d" % i)
        bus.flush()
        bus.subscribe([topic], f"{topic}.g")
        assert len(poll_until(bus, 20)) == 20

        fetcher = bus._consumer._fetcher
        original = fetcher._send_fetches_async
        never = KafkaFuture()  # resolved by nobody: the lost wake-up
        wedge = threading.Event()

        async def send_fetches() -> object:
            if wedge.is_set():
                wedge.clear()
                await never
            return await original()

        fetcher._send_fetches_async = send_fetches
        for i in range(20, 40):
            bus.publish(topic, b"%d" % i)
        bus.flush()
        wedge.set()
        result: list[object] = []
        poller = threading.Thread(target=lambda: result.append(bus.poll(timeout=0.5)), daemon=True)
        with caplog.at_level("WARNING", logger="schemas.bus.kafka"):
            poller.start()
            poller.join(300)  # a hang guard: the watch gives up after 6 s
        assert not poller.is_alive(), "the stalled poll was never given up"
        assert not wedge.is_set(), "the fetch that never wakes was not reached"
        assert result == [[]], result
        assert bus._watch is not None and bus._watch.stalls == 1
        assert "waited" in caplog.text and "giving that wait up" in caplog.text
        rest = poll_until(bus, 20)
        assert sorted(int(m.value) for m in rest) == list(range(20, 40))
    finally:
        bus.close()


def test_the_stall_limit_is_longer_than_a_request() -> None:
    with pytest.raises(ValueError, match="more than request_timeout_ms"):
        KafkaSettings(request_timeout_ms=30_000, client_stall_timeout_ms=30_000)


@pytest.mark.kafka
def test_a_rebalance_kafka_python_leaves_half_done_is_joined_again(
    kafka_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    """kafka-python 3.0.12 takes a new assignment only in the poll that waits when the join
    completes. The fault tests met a member whose rejoin (new metadata) outlived its poll:
    no partition, no heartbeat, nothing consumed for good. Here the real trigger, a topic
    that grows a partition, and kafka-python's own short polls make that state; the bus
    notices it in its next poll, finishes the join, and consumes both partitions."""
    from kafka.admin import KafkaAdminClient
    from kafka.coordinator.base import MemberState

    topic = f"test.lost-join.{uuid.uuid4().hex[:8]}"
    url = f"kafka://{kafka_broker}"
    bus = open_kafka_bus(url, topics=[TopicSpec(topic, 1, 3_600_000)],
                         session_timeout_ms=15000, heartbeat_interval_ms=1000)
    try:
        for i in range(10):
            bus.publish(topic, b"%d" % i, key=b"%d" % i)
        bus.flush()
        bus.subscribe([topic], f"{topic}.g")
        assert len(poll_until(bus, 10)) == 10
        consumer = bus._consumer
        coordinator = consumer._coordinator

        admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
        try:
            admin.create_partitions({topic: 2})
        finally:
            admin.close()
        consumer._client.cluster.request_update()  # learn it now, not in five minutes

        def half_done() -> bool:
            task = coordinator._join_task
            return bool(coordinator.state is MemberState.REBALANCING and coordinator.rejoining
                        and task is not None and task.is_done and not coordinator.need_rejoin())

        # kafka-python's own polls, each far shorter than a join: the one that starts the
        # rejoin gives up waiting, the join completes in between, and the next poll finds
        # nothing left to do
        deadline = time.monotonic() + 120  # a hang guard
        while not half_done():
            assert time.monotonic() < deadline, "the rejoin never happened"
            consumer.poll(timeout_ms=1)
            time.sleep(0.3)
        for _ in range(3):  # and it stays so (kafka-python 3.0.12; if this fails, it was
            consumer.poll(timeout_ms=1)  # fixed upstream and _finish_lost_join can go)
            time.sleep(0.5)
        # half done: the new partition is nobody's, and no heartbeat keeps the member in
        assert half_done() and 1 not in {tp.partition for tp in consumer.assignment()}

        with open_kafka_bus(url, topics=[]) as producer:  # one that knows both partitions
            for i in range(10, 30):
                producer.publish(topic, b"%d" % i, key=b"%d" % i)
            producer.flush()
        with caplog.at_level("WARNING", logger="schemas.bus.kafka"):
            rest = poll_until(bus, 20)
        assert sorted(int(m.value) for m in rest) == list(range(10, 30))
        assert {m.partition for m in rest} == {0, 1}
        assert bus.lost_joins == 1
        assert "rebalance of group" in caplog.text and "half done" in caplog.text
    finally:
        bus.close()
