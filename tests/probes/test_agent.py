"""The agent end to end: tasks on the bus -> real packets in namespaces -> results topic ->
the lead's ingest consumer -> chDB. Every emitted traceroute/DNS result parses with sagan."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from consumers.ingest import IngestConsumer
from consumers.storage import Storage
from probes.agent import Agent
from probes.settings import ScheduledTask
from schemas.bus import open_bus
from schemas.tasks import ProbeTask
from schemas.topics import HEADER_ORIGIN, HEADER_SOURCE, PROBE_TASKS, RESULTS, decode_json
from tests.probes.conftest import assert_sagan_parses, context_for, mda_validator
from tests.probes.dnsserver import ChainServer
from tests.probes.testbed import Topology

pytestmark = pytest.mark.netns
_BUS_NAMES = itertools.count()


def agent_for(topology: Topology, bus_url: str, **overrides: Any) -> Agent:
    context = context_for(topology, **overrides)
    return Agent(context.settings, open_bus(bus_url), context=context)


def drain_results(bus_url: str) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    reader = open_bus(bus_url)
    reader.subscribe([RESULTS], "test-reader")
    out = []
    while messages := reader.poll(timeout=0.2):
        out += [(decode_json(m.value), dict(m.headers)) for m in messages]
    reader.close()
    return out


def test_tasks_from_the_bus_arrive_in_clickhouse(
    diamond2: Topology, dns_server: ChainServer, storage: Storage
) -> None:
    url = f"memory://probe-agent-{next(_BUS_NAMES)}"
    scheduler = open_bus(url)
    tasks = [
        ProbeTask(task_id="t1", kind="traceroute", target=diamond2.target4, msm_id=101,
                  vantage_point="test-vp-utrecht"),
        ProbeTask(task_id="t2", kind="traceroute", target=diamond2.target6, af=6, msm_id=102,
                  paris_id=5),
        ProbeTask(task_id="t3", kind="dns", target="www.gemeente.test", msm_id=103,
                  options={"resolvers": [diamond2.target4, diamond2.target6]}),
        ProbeTask(task_id="t4", kind="mda", target=diamond2.target4, msm_id=104),
        ProbeTask(task_id="t5", kind="traceroute", target=diamond2.target4,
                  vantage_point="another-vp"),
    ]
    for task in tasks:
        scheduler.publish(PROBE_TASKS, task.to_bytes(), key=task.vantage_point.encode())
    scheduler.publish(PROBE_TASKS, b'{"kind": "nonsense"}')
    scheduler.flush()

    agent = agent_for(diamond2, url, target_interval_s=0.0)
    agent.start()
    while agent.poll_once(timeout=0.5):
        pass
    agent.close()
    health = agent.health()
    assert health["tasks_received"] == 6 and health["tasks_done"] == 4
    assert health["tasks_for_others"] == 1 and health["tasks_malformed"] == 1
    assert health["results_published"] == 4  # 2 traceroutes, 1 DNS (A+AAAA), 1 MDA

    emitted = drain_results(url)
    assert len(emitted) == 4
    for result, headers in emitted:
        assert headers[HEADER_SOURCE] == b"probe"
        assert headers[HEADER_ORIGIN] == b"test-vp-utrecht"
        if result["type"] == "mda":
            assert not list(mda_validator().iter_errors(result))
        else:
            assert_sagan_parses(result)

    consumer = IngestConsumer(open_bus(url), storage, group="probe-test-ingest")
    consumer.drain()
    hops = storage.query(
        "SELECT measurement_id, count(), uniqExact(hop), any(vantage_point), any(source) "
        "FROM traceroute_hops FINAL GROUP BY measurement_id ORDER BY measurement_id"
    ).rows
    assert [(m, n, h, vp, s) for m, n, h, vp, s in hops] == [
        (101, 12, 4, "test-vp-utrecht", "probe"),
        (102, 12, 4, "test-vp-utrecht", "probe"),
    ]
    dns_rows = storage.query(
        "SELECT query_type, record_type, record_name, resolver_address "
        "FROM dns_answers FINAL WHERE measurement_id = 103 AND record_type = 'CNAME'"
    ).rows
    # 2 CNAME hops x 2 query types x 2 resolvers
    assert len(dns_rows) == 8
    assert {row[1] for row in dns_rows} == {"CNAME"}
    assert {row[3] for row in dns_rows} == {diamond2.target4, diamond2.target6}
    raw = storage.query(
        "SELECT result_type, count() FROM raw_results FINAL WHERE source = 'probe' "
        "GROUP BY result_type ORDER BY result_type"
    ).rows
    assert dict(raw)["traceroute"] == 2 and dict(raw)["dns"] == 1 and dict(raw)["mda"] == 1
    # MDA links: both branches of the diamond, each with the flow ids that revealed it
    links = storage.query(
        "SELECT ttl, near_address, far_address, flow_ids FROM mda_links FINAL "
        "WHERE source = 'probe' ORDER BY ttl, far_address"
    ).rows
    branch_ttl = min(ttl for ttl, *_ in links if sum(1 for t, *_ in links if t == ttl) > 1)
    assert len({far for ttl, _, far, _ in links if ttl == branch_ttl}) >= 2
    assert all(flows for *_, flows in links)


def test_local_schedule_runs_without_a_scheduler(diamond2: Topology) -> None:
    url = f"memory://probe-agent-{next(_BUS_NAMES)}"
    task = ProbeTask(task_id="s", kind="traceroute", target=diamond2.target4)
    agent = agent_for(diamond2, url, schedule=[ScheduledTask(interval_s=0.2, task=task)],
                      target_interval_s=0.0)
    agent.consume_tasks = False
    stop = threading.Event()
    runner = threading.Thread(target=agent.run_forever, args=(stop, 0.1))
    runner.start()
    deadline = time.monotonic() + 300  # a hang guard: two rounds, however slow the machine
    try:
        while agent.health()["results_published"] < 2:
            assert time.monotonic() < deadline, agent.health()
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(timeout=120)
    assert not runner.is_alive(), "the agent did not stop"
    agent.close()
    results = drain_results(url)
    assert len(results) >= 2
    for result, _headers in results:
        assert_sagan_parses(result)


def test_refused_target_is_counted_and_the_agent_goes_on(diamond2: Topology) -> None:
    url = f"memory://probe-agent-{next(_BUS_NAMES)}"
    agent = agent_for(diamond2, url, allow=[], deny=[])
    published = agent.run_tasks([
        ProbeTask(task_id="r", kind="traceroute", target=diamond2.target4),
        ProbeTask(task_id="lo", kind="traceroute", target="127.0.0.1"),
    ])
    agent.close()
    assert published == 0
    assert agent.health()["tasks_refused"] == 2
    assert "allow it explicitly" in agent.health()["last_error"]


def test_task_options_from_the_bus_are_held_to_the_agent_settings(diamond2: Topology) -> None:
    """A task asking for more than the agent allows gets the agent's limits; a task with
    nonsense options is counted as malformed and the agent goes on (issue 13, item 7)."""
    url = f"memory://probe-agent-{next(_BUS_NAMES)}"
    greedy = {"max_hops": 64, "packets": 16, "size": 1400, "timeout_s": 10, "gap_limit": 64}
    tasks = [
        ProbeTask(task_id="tr", kind="traceroute", target=diamond2.target4, msm_id=201,
                  options=greedy),
        ProbeTask(task_id="mda", kind="mda", target=diamond2.target6, af=6, msm_id=202,
                  options={"max_hops": 64, "size": 1400, "max_flows": 4096,
                           "confidence": 0.99, "timeout_s": 10}),
        ProbeTask(task_id="bad-type", kind="traceroute", target=diamond2.target4,
                  options={"packets": "all of them"}),
        ProbeTask(task_id="unknown", kind="traceroute", target=diamond2.target4,
                  options={"flood": True}),
        ProbeTask(task_id="zero", kind="mda", target=diamond2.target4, options={"max_hops": 0}),
    ]
    scheduler = open_bus(url)
    for task in tasks:
        scheduler.publish(PROBE_TASKS, task.to_bytes())
    scheduler.flush()
    agent = agent_for(diamond2, url, target_interval_s=0.0, max_hops=3, packets=2,
                      payload_size=40, mda_max_flows=24, mda_confidence=0.95)
    agent.start()
    while agent.poll_once(timeout=0.5):
        pass
    agent.close()
    health = agent.health()
    assert health["tasks_received"] == 5 and health["tasks_done"] == 2
    assert health["tasks_clamped"] == 2 and health["tasks_malformed"] == 3
    by_msm = {result["msm_id"]: result for result, _headers in drain_results(url)}
    assert set(by_msm) == {201, 202}
    trace = by_msm[201]
    assert_sagan_parses(trace)
    assert [hop["hop"] for hop in trace["result"]] == [1, 2, 3]  # max_hops 3, not 64
    assert all(len(hop["result"]) == 2 for hop in trace["result"])  # packets 2, not 16
    assert trace["size"] == 40 and trace["gw_probes_sent"] == 6
    mda = by_msm[202]
    assert not list(mda_validator().iter_errors(mda))
    assert mda["confidence"] == 0.95 and mda["flows_used"] <= 24
    assert max(node["ttl"] for node in mda["nodes"]) <= 3
