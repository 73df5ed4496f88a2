"""Scheduler -> probe tasks -> agent -> results -> ingest -> stored rows -> verdicts, end to
end, with a network-namespace testbed as the measured network: on the memory bus and on the
real Kafka broker. The inventory's hostnames are the testbed's own addresses (no name is
resolved, no packet leaves the namespaces)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.enrich import open_enricher
from consumers.enrich.settings import JurisdictionSettings, VantagePointPosition
from consumers.ingest import IngestConsumer
from consumers.pipeline import AnalysisContext, analyse_window
from consumers.storage import Storage
from probes.agent import Agent
from scheduler.app import start_scheduler
from scheduler.inventory import load_inventory
from scheduler.selfhosted import wanted_task_series
from scheduler.settings import AtlasSettings, ProbeMetadataSettings, SelfHostedSchedule
from schemas.bus import open_bus
from tests.probes import testbed
from tests.probes.conftest import context_for

pytestmark = pytest.mark.netns
DEADLINE_S = 300.0  # a hang guard: every wait returns as soon as its condition holds


@pytest.fixture(scope="module")
def lab() -> Iterator[testbed.Topology]:
    reason = testbed.netns_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    topology = testbed.Topology([("src", "r1"), ("r1", "a1"), ("r1", "a2"), ("a1", "dst"),
                                 ("a2", "dst")])
    try:
        topology.build()
        yield topology
    finally:
        topology.destroy()


def inventory_for(topology: testbed.Topology, vp: str, path: Path) -> Path:
    path.write_text(f"""\
[measurements]
address_families = [4, 6]

[measurements.self_hosted]
traceroute_protocols = ["udp"]

[[vantage_set]]
name = "lab"
kind = "self"
probes = ["{vp}"]

[[application]]
name = "Lab service"
hostnames = ["{topology.target4}", "{topology.target6}"]
criticality = "critical"
""")
    return path


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_flow(url: str, topology: testbed.Topology, storage: Storage, tmp_path: Path) -> None:
    vp = f"vp-lab-{uuid.uuid4().hex[:6]}"
    inventory = inventory_for(topology, vp, tmp_path / "apps.toml")
    series = wanted_task_series(load_inventory(inventory))
    ids = {s.kind: set() for s in series}  # type: dict[str, set[int]]
    for one in series:
        ids[one.kind].add(one.msm_id)
    assert sorted(len(v) for v in ids.values()) == [2, 2]  # traceroute and MDA, v4 and v6
    settings = AtlasSettings(
        inventory=inventory,
        probe_metadata=ProbeMetadataSettings(enabled=False),
        self_hosted=SelfHostedSchedule(tick_s=1),
    )
    context = context_for(topology, name=vp, target_interval_s=0.0)
    buses = [open_bus(url) for _ in range(3)]
    agent = Agent(context.settings, buses[0], context=context)
    ingest = IngestConsumer(buses[1], storage, group=f"ingest-{vp}", flush_interval_s=0.2)
    stop = threading.Event()
    threads = [threading.Thread(target=agent.run_forever, args=(stop,), daemon=True),
               threading.Thread(target=ingest.run, args=(stop,), daemon=True)]
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    agent.start()
    for thread in threads:
        thread.start()
    handle = start_scheduler(settings, buses[2], tmp_path)
    try:
        all_ids = sorted(ids["traceroute"] | ids["mda"])

        def stored() -> bool:
            traces = storage.query(
                "SELECT uniqExact(measurement_id) FROM traceroute_hops "
                "WHERE measurement_id IN {ids:Array(UInt64)}", {"ids": all_ids}).rows[0][0]
            mda = storage.query(
                "SELECT uniqExact(measurement_id) FROM mda_links "
                "WHERE measurement_id IN {ids:Array(UInt64)}", {"ids": all_ids}).rows[0][0]
            return bool(traces == 2 and mda == 2)

        wait_for(stored, "traceroute and MDA rows of all four task series")
    finally:
        handle.shutdown()
        stop.set()
        for thread in threads:
            thread.join(30)
        agent.close()
        for bus in buses:
            bus.close()
    health = agent.health()
    assert health["tasks_done"] >= 4 and health["tasks_failed"] == 0
    assert health["tasks_refused"] == 0
    # the traceroutes reached the testbed's destination, from the vantage point
    reached = storage.query(
        "SELECT DISTINCT destination_address, vantage_point FROM traceroute_hops "
        "WHERE measurement_id IN {ids:Array(UInt64)} AND reply_address = destination_address",
        {"ids": sorted(ids["traceroute"])}).rows
    assert sorted(reached) == sorted([(topology.target4, vp), (topology.target6, vp)])
    # both branches of the diamond were found by MDA
    branches = storage.query(
        "SELECT uniqExact(near_address) FROM mda_links "
        "WHERE measurement_id IN {ids:Array(UInt64)} AND far_address = {dst:String}",
        {"ids": sorted(ids["mda"]), "dst": topology.target4}).rows[0][0]
    assert branches == 2
    # and the analysis turns the stored rows into path verdicts from this vantage point
    enricher, registry = open_enricher(JurisdictionSettings(
        vantage_points=[VantagePointPosition(name=vp, latitude=52.09, longitude=5.12,
                                             country="NL")]))
    analyse_window(storage, None, started, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5),
                   AnalysisContext(enricher, registry,
                                   {"Lab service": [topology.target4, topology.target6]}))
    verdicts = storage.query(
        "SELECT DISTINCT destination_address, vantage_key FROM path_verdicts FINAL "
        "WHERE measurement_id IN {ids:Array(UInt64)}", {"ids": sorted(ids["traceroute"])}).rows
    assert sorted(verdicts) == sorted([(topology.target4, f"vp:{vp}"),
                                       (topology.target6, f"vp:{vp}")])


def test_end_to_end_on_the_memory_bus(
    lab: testbed.Topology, storage: Storage, tmp_path: Path
) -> None:
    run_flow(f"memory://selfhosted-{uuid.uuid4().hex}", lab, storage, tmp_path)


@pytest.mark.kafka
def test_end_to_end_on_kafka(
    lab: testbed.Topology, storage: Storage, tmp_path: Path, kafka_broker: str
) -> None:
    run_flow(f"kafka://{kafka_broker}", lab, storage, tmp_path)
