"""pytest plugin: a real Apache Kafka broker for the tests marked ``kafka``.

``kafka_broker`` (session) yields the bootstrap address ``127.0.0.1:PORT``. It reuses the
broker named by ``GRENSWACHT_TEST_KAFKA`` (``host:port`` or a broker working directory
written by ``python tools/kafka/broker.py start --dir DIR``), otherwise it starts one in a
temporary directory with ``tools/kafka/broker.py`` and stops it when the session ends.
``kafka_broker_state`` gives the full state (SCRAM listener and user) when known.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.kafka import broker


def _from_environment() -> tuple[str, broker.BrokerState | None] | None:
    named = os.environ.get("GRENSWACHT_TEST_KAFKA", "").strip()
    if not named:
        return None
    if named.startswith("kafka://"):
        named = named[len("kafka://"):]
    if Path(named).is_dir():
        state = broker.read_state(Path(named))
        if state is None:
            raise pytest.UsageError(f"GRENSWACHT_TEST_KAFKA={named} holds no {broker.STATE_FILE}")
        return state.bootstrap, state
    return named, None


@pytest.fixture(scope="session")
def kafka_broker_state(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, broker.BrokerState | None]]:
    given = _from_environment()
    if given is not None:
        if not broker.is_ready(given[0], timeout=60.0):
            raise pytest.UsageError(f"the broker GRENSWACHT_TEST_KAFKA={given[0]} is not ready")
        yield given
        return
    workdir = tmp_path_factory.mktemp("kafka-broker")
    state = broker.start(workdir, timeout=600.0)  # a hang guard: a JVM on a loaded machine
    try:
        yield state.bootstrap, state
    finally:
        broker.stop(workdir)


@pytest.fixture(scope="session")
def kafka_broker(kafka_broker_state: tuple[str, broker.BrokerState | None]) -> str:
    """Bootstrap address ``127.0.0.1:PORT`` of the session's real Kafka broker."""
    return kafka_broker_state[0]
