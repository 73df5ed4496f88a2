"""MDA over the rootless prober finds every branch of every testbed diamond (IPv4, IPv6)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from probes.mda import run_mda, stopping_point
from schemas.tasks import ProbeTask
from tests.probes.conftest import context_for, mda_validator
from tests.probes.testbed import Topology

pytestmark = pytest.mark.netns
FIGURES: dict[str, Any] = {}


def mda(topology: Topology, af: int, confidence: float = 0.95) -> dict[str, Any]:
    target = topology.target4 if af == 4 else topology.target6
    task = ProbeTask(task_id="m", kind="mda", target=target, af=af,
                     options={"confidence": confidence})
    started = time.perf_counter()
    [result] = run_mda(task, context_for(topology))
    FIGURES[f"{af}"] = time.perf_counter() - started
    errors = sorted(mda_validator().iter_errors(result), key=str)
    assert not errors, errors
    return result


def addresses_at(result: dict[str, Any]) -> dict[int, set[str | None]]:
    out: dict[int, set[str | None]] = {}
    for node in result["nodes"]:
        out.setdefault(node["ttl"], set()).add(node["address"])
    return out


CASES = {
    "diamond2": (["a1", "a2"], {2: 2}),
    "diamond3": (["a1", "a2", "a3"], {2: 3}),
    "two_diamonds": (["a1", "a2", "b1", "b2"], {2: 2, 4: 2}),
    "unequal": (["a1", "b1", "b2"], {2: 2}),
}


@pytest.mark.parametrize("af", [4, 6])
@pytest.mark.parametrize("name", sorted(CASES))
def test_mda_finds_every_branch(
    name: str, af: int, request: pytest.FixtureRequest, record_property: Any
) -> None:
    topology: Topology = request.getfixturevalue(name)
    branch_nodes, width = CASES[name]
    result = mda(topology, af, 0.99)
    seen = {a for node in result["nodes"] for a in [node["address"]]}
    for node in branch_nodes:
        assert topology.router_address(node, af) in seen, f"{node} not found"
    per_ttl = addresses_at(result)
    for ttl, count in width.items():
        assert len(per_ttl[ttl]) == count
    assert result["reached"] and result["complete"] and result["stop_reason"] == "destination"
    # every branch router is linked to from the node before it
    linked = {link["to"] for link in result["links"]}
    for node in branch_nodes:
        assert topology.router_address(node, af) in linked
    for link in result["links"]:
        assert link["flow_ids"]
    record_property("probes_sent", result["probes_sent"])
    record_property("seconds", FIGURES[f"{af}"])


def test_links_name_the_flows_that_revealed_them(diamond2: Topology) -> None:
    result = mda(diamond2, 4)
    hop2 = {n["address"]: set(n["flow_ids"]) for n in result["nodes"] if n["ttl"] == 2}
    for link in result["links"]:
        if link["ttl"] == 2:  # branch -> merge router: its flows went through the branch
            assert set(link["flow_ids"]) <= hop2[link["from"]]
    assert result["confidence"] == 0.95
    assert result["flows_used"] >= stopping_point(2, 0.95)
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
