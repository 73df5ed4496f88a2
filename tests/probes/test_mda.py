"""MDA over the rootless prober finds every branch of every testbed diamond (IPv4, IPv6),
consecutive diamonds whose routers hash with the same function included, run after run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from probes.mda import MIN_TESTS, per_test_confidence, run_mda, stopping_point
from schemas.tasks import ProbeTask
from tests.probes.conftest import context_for, mda_validator
from tests.probes.testbed import Topology

pytestmark = pytest.mark.netns
RUNS = 20  # consecutive runs per topology and address family (issue 16)


def mda(topology: Topology, af: int, confidence: float = 0.95, **options: Any
        ) -> dict[str, Any]:
    target = topology.target4 if af == 4 else topology.target6
    task = ProbeTask(task_id="m", kind="mda", target=target, af=af, options=options)
    [result] = run_mda(task, context_for(topology, mda_confidence=confidence))
    errors = sorted(mda_validator().iter_errors(result), key=str)
    assert not errors, errors
    return result


def addresses_at(result: dict[str, Any]) -> dict[int, set[str | None]]:
    out: dict[int, set[str | None]] = {}
    for node in result["nodes"]:
        out.setdefault(node["ttl"], set()).add(node["address"])
    return out


# topology -> (branch routers, {ttl: interfaces at that ttl})
CASES = {
    "diamond2": (["a1", "a2"], {2: 2}),
    "diamond3": (["a1", "a2", "a3"], {2: 3}),
    "two_diamonds": (["a1", "a2", "b1", "b2"], {2: 2, 4: 2}),
    "unequal": (["a1", "b1", "b2"], {2: 2}),
    "chain_3_2": (["a1", "a2", "a3", "b1", "b2"], {2: 3, 4: 2}),
    "chain_4_2": (["a1", "a2", "a3", "a4", "b1", "b2"], {2: 4, 4: 2}),
    "chain_2_3": (["a1", "a2", "b1", "b2", "b3"], {2: 2, 4: 3}),
    "chain_2_2_2": (["a1", "a2", "b1", "b2", "c1", "c2"], {2: 2, 4: 2, 6: 2}),
    "meshed": (["a1", "a2", "b1", "b2"], {2: 2}),
}
CORRELATED = ("two_diamonds", "chain_3_2", "chain_4_2", "chain_2_3", "chain_2_2_2")


def missed(topology: Topology, af: int, result: dict[str, Any], name: str) -> list[str]:
    """What a run got wrong: branch routers not found or not linked, wrong widths."""
    branch_nodes, width = CASES[name]
    seen = {node["address"] for node in result["nodes"]}
    linked = {link["to"] for link in result["links"]}
    wrong = [node for node in branch_nodes
             if not topology.interface_addresses(node, af) & seen & linked]
    per_ttl = addresses_at(result)
    wrong += [f"{len(per_ttl.get(ttl, ()))} at ttl {ttl}" for ttl, count in width.items()
              if len(per_ttl.get(ttl, ())) != count]
    if not (result["reached"] and result["complete"] and result["stop_reason"] == "destination"):
        wrong.append(f"reached {result['reached']}, complete {result['complete']}, "
                     f"stop {result['stop_reason']}")
    return wrong


@pytest.mark.parametrize("af", [4, 6])
@pytest.mark.parametrize("name", sorted(CASES))
def test_mda_finds_every_branch(
    name: str, af: int, request: pytest.FixtureRequest, record_property: Any
) -> None:
    topology: Topology = request.getfixturevalue(name)
    started = time.perf_counter()
    result = mda(topology, af, 0.99, seed=1)
    assert missed(topology, af, result, name) == []
    for link in result["links"]:
        assert link["flow_ids"]
    record_property("probes_sent", result["probes_sent"])
    record_property("seconds", round(time.perf_counter() - started, 2))


@pytest.mark.slow
@pytest.mark.parametrize("af", [4, 6])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_branch_in_twenty_consecutive_runs_at_95(
    name: str, af: int, request: pytest.FixtureRequest, record_property: Any
) -> None:
    """Issue 16's done-when, seeds 0..19 (a fresh flow order each run, replayable).

    Every run must find every branch, save that one run in twenty may miss one: 95 % is a
    bound, not a certainty — a run whose first flows all hash to one branch of the first
    diamond (probability 2**-10 for two branches at 11 flows) sees one path, and with
    correlated diamonds misses the branches behind it too. docs/probes.md has the rate
    measured over 2,000 runs; the fixed mapping before issue 16 missed in every run, so a
    second miss in twenty is a regression. The union of the runs (what monitoring draws,
    tests/graph/test_testbed.py) must hold every branch."""
    topology: Topology = request.getfixturevalue(name)
    failures: dict[int, list[str]] = {}
    probes: list[int] = []
    union: set[str | None] = set()
    for seed in range(RUNS):
        result = mda(topology, af, 0.95, seed=seed)
        assert result["flow_seed"] == seed
        probes.append(result["probes_sent"])
        union |= {node["address"] for node in result["nodes"]}
        if wrong := missed(topology, af, result, name):
            failures[seed] = wrong
    record_property("probes_mean", round(sum(probes) / len(probes), 1))
    record_property("probes_max", max(probes))
    record_property("runs_missing_something", sorted(failures))
    assert len(failures) <= 1, failures
    assert all(topology.interface_addresses(n, af) & union for n in CASES[name][0])


def test_a_seed_replays_the_run_and_a_fresh_seed_draws_other_flows(
    two_diamonds: Topology,
) -> None:
    first = mda(two_diamonds, 4, seed=12345)
    again = mda(two_diamonds, 4, seed=12345)
    assert first["flow_seed"] == again["flow_seed"] == 12345
    assert (first["nodes"], first["links"]) == (again["nodes"], again["links"])
    other = mda(two_diamonds, 4)  # a fresh random seed
    assert other["flow_seed"] != 12345
    flows = {f for node in first["nodes"] for f in node["flow_ids"]}
    assert flows != {f for node in other["nodes"] for f in node["flow_ids"]}
    # a flow id is a source port: source_port_base + flow id
    assert all(0 <= f < 65536 - first["source_port_base"] for f in flows)


@pytest.mark.parametrize("name", CORRELATED)
def test_correlated_diamonds_are_reported(name: str, request: pytest.FixtureRequest) -> None:
    """IPv4: the router between two diamonds answers from one address, so its flows are
    told apart by the branch they came through; with one hash seed everywhere each branch
    of the first diamond leads to part of the second only."""
    topology: Topology = request.getfixturevalue(name)
    result = mda(topology, 4, seed=7)
    assert result["meshed_ttls"] == []
    merge = {item["address"]: item for item in result["correlated_nodes"]}
    r2 = merge[topology.router_address("r2", 4)]
    assert r2["ttl"] == 3
    by_branch = {entry["predecessor"]: set(entry["successors"]) for entry in r2["by_predecessor"]}
    first = {topology.router_address(n, 4) for n in CASES[name][0] if n.startswith("a")}
    second = {topology.router_address(n, 4) for n in CASES[name][0] if n.startswith("b")}
    assert set(by_branch) == first
    assert set().union(*by_branch.values()) == second
    assert any(reached < second for reached in by_branch.values())


def test_a_meshed_diamond_is_reported(meshed: Topology) -> None:
    result = mda(meshed, 4, seed=7)
    assert result["meshed_ttls"] == [2]  # a1 -> b1, b2 and b1 <- a1, a2
    links = {(link["from"], link["to"]) for link in result["links"] if link["ttl"] == 2}
    address = meshed.router_address
    assert links == {(address(a, 4), address(b, 4)) for a in ("a1", "a2") for b in ("b1", "b2")}
    assert result["correlated_nodes"] == []


def test_links_name_the_flows_that_revealed_them(diamond2: Topology) -> None:
    result = mda(diamond2, 4)
    hop2 = {n["address"]: set(n["flow_ids"]) for n in result["nodes"] if n["ttl"] == 2}
    for link in result["links"]:
        if link["ttl"] == 2:  # branch -> merge router: its flows went through the branch
            assert set(link["flow_ids"]) <= hop2[link["from"]]
    assert result["confidence"] == 0.95
    assert result["test_confidence"] == round(per_test_confidence(0.95, result["tests"]), 6)
    assert result["flows_used"] >= stopping_point(2, result["test_confidence"])
    assert result["probes_sent"] >= sum(len(n["flow_ids"]) for n in result["nodes"])


def test_silent_hop_is_a_null_node_and_mda_goes_on(silent_hop: Topology) -> None:
    result = mda(silent_hop, 6)
    per_ttl = addresses_at(result)
    assert per_ttl[2] == {None}
    assert per_ttl[3] == {silent_hop.router_address("r2", 6)}
    assert result["reached"]


@pytest.mark.parametrize(
    ("confidence", "table"),
    [(0.95, [6, 11, 16, 21, 27, 33]), (0.99, [8, 15, 21, 28, 36, 43])],
)
def test_stopping_points_follow_the_union_bound(confidence: float, table: list[int]) -> None:
    # 0.95 reproduces Augustin et al.'s published table (6, 11, 16, 21, 27, ...)
    assert [stopping_point(k, confidence) for k in range(1, 7)] == table
    for k, n in enumerate(table, start=1):
        assert (k + 1) * (k / (k + 1)) ** n <= 1 - confidence
        assert (k + 1) * (k / (k + 1)) ** (n - 1) > 1 - confidence


def test_the_run_confidence_is_shared_by_its_tests() -> None:
    # at least MIN_TESTS tests: a run that missed a branch counts fewer tests, not more
    assert per_test_confidence(0.95, 1) == per_test_confidence(0.95, MIN_TESTS)
    for tests in (MIN_TESTS, 50, 200):
        assert per_test_confidence(0.95, tests) ** tests == pytest.approx(0.95)
    # per test at 95 % for the whole run of up to 30 tests: 11 probes through a vertex
    # with one successor seen, 19 with two (against 6 and 11 per vertex)
    each = per_test_confidence(0.95, MIN_TESTS)
    assert [stopping_point(k, each) for k in (1, 2, 3)] == [11, 19, 27]
