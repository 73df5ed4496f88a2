"""Shared fixtures. chDB allows one engine (one data directory) per process, so the whole
pytest process shares one store; the ``storage`` fixture empties every table first."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.storage import Storage, open_storage

pytest_plugins: list[str] = ["tests.plugins.kafka"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_ATLAS = Path(
    os.environ.get("GRENSWACHT_SHARED_ATLAS", ROOT.parent / "shared" / "data" / "atlas")
)

_CHDB_DIR = tempfile.mkdtemp(prefix="gw-test-chdb-")

# Nothing in the suite may reach atlas.ripe.net: a `grenswacht run` or `schedule` that a
# test starts through the settings loader must not fetch probe metadata. Tests that want
# it build AtlasSettings pointed at the loopback fake (tests/fakes/atlas).
os.environ["GRENSWACHT_ATLAS__PROBE_METADATA__ENABLED"] = "false"
# Component processes the tests start (`consume`, `schedule`, `probe run`) serve /metrics on
# any free port, not on the fixed default: a member still shutting down, or a second suite
# on the same machine, must not make the next one fail to start.
os.environ["GRENSWACHT_METRICS__PORT"] = "0"
# A Kafka consumer call that kafka-python never wakes up (schemas/bus/kafka.py,
# _StallWatch) is given up after 45 s in the processes the tests start, not after the
# production 120 s: well inside the fault tests' 240 s without progress.
os.environ["GRENSWACHT_KAFKA__CLIENT_STALL_TIMEOUT_MS"] = "45000"


@pytest.fixture(scope="session")
def chdb_dsn() -> str:
    return f"chdb://{_CHDB_DIR}"


@pytest.fixture(scope="session")
def session_storage(chdb_dsn: str) -> Storage:
    return open_storage(chdb_dsn)


@pytest.fixture()
def storage(session_storage: Storage) -> Iterator[Storage]:
    """The process's chDB store with every table emptied."""
    tables = session_storage.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations' "
        # the geo claim tables are reference data, loaded once per dataset version
        # (consumers/claim_tables.py): emptying them would reload them for every test
        "AND name != 'claim_datasets' AND NOT startsWith(name, 'claims_')"
    ).rows
    for (name,) in tables:
        session_storage.command(f"TRUNCATE TABLE {name}")
    yield session_storage


@pytest.fixture(scope="session")
def shared_atlas() -> Path:
    if not SHARED_ATLAS.is_dir():
        pytest.skip(f"the shared RIPE Atlas corpus is not at {SHARED_ATLAS}")
    return SHARED_ATLAS
