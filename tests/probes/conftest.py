"""Fixtures of the probe tests: namespace topologies (built once per session, torn down
whatever happens), a CNAME-chain DNS server inside one of them, and the sagan check every
emitted result must pass."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ripe.atlas.sagan import Result

from probes.context import RunContext
from probes.settings import ProbeSettings
from tests.probes import testbed
from tests.probes.dnsserver import ChainServer

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema" / "mda.schema.json"
CHAIN = ["www.gemeente.test.", "app.saas-vendor.test.", "edge.cdn.test."]


def assert_sagan_parses(result: dict[str, Any]) -> Any:
    """Parse with ripe-atlas-sagan, failing on any error or malformation (also below the
    top level: hops, packets, DNS answers)."""
    parsed = Result.get(
        json.dumps(result), on_error=Result.ACTION_FAIL, on_malformation=Result.ACTION_FAIL
    )
    assert not parsed.is_error, parsed.error_message
    assert not parsed.is_malformed
    assert parsed.probe_id == result["prb_id"]
    if result["type"] == "dns":
        for response in parsed.responses:
            assert response.abuf is not None
            assert not response.abuf.is_error
    return parsed


def mda_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="session")
def netns_ok() -> None:
    reason = testbed.netns_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def _topology(factory: Callable[[], testbed.Topology]) -> Iterator[testbed.Topology]:
    topology = factory()
    try:
        topology.build()
        yield topology
    finally:
        topology.destroy()


@pytest.fixture(scope="session")
def diamond2(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(testbed.diamond2)


@pytest.fixture(scope="session")
def diamond3(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(testbed.diamond3)


@pytest.fixture(scope="session")
def two_diamonds(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(testbed.two_diamonds)


@pytest.fixture(scope="session")
def unequal(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(testbed.unequal)


@pytest.fixture(scope="session")
def silent_hop(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(testbed.silent_hop)


# consecutive diamonds of different widths, every router hashing with the same seed
@pytest.fixture(scope="session")
def chain_3_2(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(lambda: testbed.diamond_chain(3, 2))


@pytest.fixture(scope="session")
def chain_4_2(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(lambda: testbed.diamond_chain(4, 2))


@pytest.fixture(scope="session")
def chain_2_3(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(lambda: testbed.diamond_chain(2, 3))


@pytest.fixture(scope="session")
def chain_2_2_2(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(lambda: testbed.diamond_chain(2, 2, 2))


@pytest.fixture(scope="session")
def meshed(netns_ok: None) -> Iterator[testbed.Topology]:
    yield from _topology(testbed.meshed)


def context_for(topology: testbed.Topology, **overrides: Any) -> RunContext:
    """A vantage point in the topology's ``src`` namespace, allowed to probe the testbed."""
    values: dict[str, Any] = {
        "name": "test-vp-utrecht",
        "city": "Utrecht",
        "latitude": 52.09,
        "longitude": 5.12,
        "asn": 1103,
        "netns": topology.ns("src"),
        "timeout_s": 0.3,
        "allow": [topology.network4, topology.network6],
    }
    values.update(overrides)
    return RunContext.from_settings(ProbeSettings(**values))


@pytest.fixture(scope="session")
def dns_server(diamond2: testbed.Topology) -> Iterator[ChainServer]:
    """A CNAME-chain server on the diamond's destination (IPv4 and IPv6)."""
    server = ChainServer(
        CHAIN,
        {"A": [diamond2.target4], "AAAA": [diamond2.target6]},
        listen=[diamond2.target4, diamond2.target6],
        netns=diamond2.ns("dst"),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
