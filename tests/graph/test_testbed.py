"""Accuracy on real packets: MDA and Paris traceroutes through the namespace testbed.

Ground truth is the topology itself (which routers sit on which branch). Every diamond must
be found with all its branches and the right divergence/convergence, and no load balancer
may be reported on the single path with a silent hop: precision = recall = 1.0. The
consecutive diamonds (``chain_*``) hash with one seed in every router, so they are
correlated (issue 16). In monitoring a window holds many MDA runs; the graph is their union.
"""

from __future__ import annotations

from typing import Any

import pytest

from consumers.graph import load_balancer
from consumers.graph.window import window_from_rows
from probes.mda import run_mda
from probes.traceroute import run_traceroute
from schemas.tasks import ProbeTask
from tests.graph.conftest import EVERYTHING, normalized
from tests.probes.conftest import context_for
from tests.probes.testbed import Topology

pytestmark = pytest.mark.netns

# topology -> [(divergence, convergence, branch routers)]
TRUTH = {
    "diamond2": [("r1", "r2", {"a1", "a2"})],
    "diamond3": [("r1", "r2", {"a1", "a2", "a3"})],
    "two_diamonds": [("r1", "r2", {"a1", "a2"}), ("r2", "r3", {"b1", "b2"})],
    "unequal": [("r1", "r2", {"a1", "b1", "b2"})],
    "silent_hop": [],
    "chain_3_2": [("r1", "r2", {"a1", "a2", "a3"}), ("r2", "r3", {"b1", "b2"})],
    "chain_4_2": [("r1", "r2", {"a1", "a2", "a3", "a4"}), ("r2", "r3", {"b1", "b2"})],
    "chain_2_3": [("r1", "r2", {"a1", "a2"}), ("r2", "r3", {"b1", "b2", "b3"})],
    "chain_2_2_2": [("r1", "r2", {"a1", "a2"}), ("r2", "r3", {"b1", "b2"}),
                    ("r3", "r4", {"c1", "c2"})],
}
FLOWS = 16  # Paris traceroutes per topology (paris_id 0..15, as RIPE Atlas rotates 16)
UNION_RUNS = 5
UNION_FLOWS = 10  # so few flows per run that one run alone misses branches
TOTALS: dict[str, list[int]] = {}


def measure(topology: Topology, af: int, source: str) -> list[dict[str, Any]]:
    target = topology.target4 if af == 4 else topology.target6
    context = context_for(topology)
    if source == "mda":
        task = ProbeTask(task_id="m", kind="mda", target=target, af=af, options={"seed": 0})
        return run_mda(task, context)
    if source == "mda_union":
        return [result for seed in range(1, UNION_RUNS + 1) for result in run_mda(
            ProbeTask(task_id=f"m{seed}", kind="mda", target=target, af=af,
                      options={"seed": seed, "max_flows": UNION_FLOWS}), context)]
    results = []
    for paris_id in range(FLOWS):
        task = ProbeTask(task_id=f"t{paris_id}", kind="traceroute", target=target, af=af,
                         paris_id=paris_id, options={"packets": 3})
        results.extend(run_traceroute(task, context))
    return results


def detect(topology: Topology, af: int, source: str) -> list[Any]:
    batch = normalized(measure(topology, af, source))
    window = window_from_rows(*EVERYTHING, batch.as_dicts("traceroute_hops"),
                              mda_rows=batch.as_dicts("mda_links"))
    return load_balancer.detect(window)


@pytest.mark.parametrize("source", ["mda", "paris", "mda_union"])
@pytest.mark.parametrize("name", sorted(TRUTH))
def test_every_diamond_with_every_branch_and_nothing_else(
    name: str, source: str, request: pytest.FixtureRequest, record_property: Any,
) -> None:
    """IPv4: a Linux router answers from one address (towards the prober), so interfaces
    are routers and the topology is the ground truth, diamond by diamond."""
    af = 4
    topology: Topology = request.getfixturevalue(name)
    findings = detect(topology, af, source)

    def address(node: str) -> str:
        return topology.router_address(node, af)

    expected = {(address(d), address(c)): {address(n) for n in branch}
                for d, c, branch in TRUTH[name]}
    found = {(f.evidence["divergence"], f.evidence["convergence"]): f for f in findings}
    correct = 0
    for key, finding in found.items():
        inside = {hop for branch in finding.evidence["branches"] for hop in branch[1:-1]}
        if key in expected and inside == expected[key] and finding.kind == "load_balancer":
            correct += 1
    precision = correct / len(found) if found else 1.0
    recall = correct / len(expected) if expected else 1.0
    totals = TOTALS.setdefault(source, [0, 0, 0])
    totals[0] += correct
    totals[1] += len(found)
    totals[2] += len(expected)
    record_property("precision", precision)
    record_property("recall", recall)
    assert precision == 1.0, [f.summary for f in findings]
    assert recall == 1.0, [f.summary for f in findings]
    for finding in findings:
        assert finding.evidence["mode"] == "per_flow"
        # a flow id is one header in every run: flows keep their branch across runs
        assert finding.evidence["flow_stability"] == 1.0
        assert finding.evidence["remapped_flows"] == []
        assert finding.evidence["width"] == len(expected[(finding.evidence["divergence"],
                                                          finding.evidence["convergence"])]
                                                 ) or name == "unequal"
        assert finding.vantage_keys == ("vp:test-vp-utrecht",)
    if name == "unequal":
        [finding] = findings
        assert finding.evidence["width"] == 2 and finding.evidence["length"] == 3


@pytest.mark.parametrize("source", ["mda", "paris", "mda_union"])
@pytest.mark.parametrize("name", sorted(TRUTH))
def test_ipv6_interface_graph_keeps_every_branch(
    name: str, source: str, request: pytest.FixtureRequest,
) -> None:
    """IPv6: Linux answers from the interface the probe came in on, so a merge router has
    one address per branch and (without alias resolution) the interface-level diamond runs
    on to the next shared interface. Every branch router is still inside a reported branch,
    every finding is per flow, and the single path reports nothing."""
    topology: Topology = request.getfixturevalue(name)
    findings = detect(topology, 6, source)
    inside = {hop for f in findings for branch in f.evidence["branches"]
              for hop in branch[1:-1]}
    for _d, _c, branch in TRUTH[name]:
        for node in branch:
            assert topology.router_address(node, 6) in inside, node
    assert bool(findings) == bool(TRUTH[name])
    assert all(f.kind == "load_balancer" and f.evidence["mode"] == "per_flow"
               for f in findings)


def test_one_starved_run_misses_what_the_union_of_runs_finds(chain_4_2: Topology) -> None:
    """Monitoring reads every MDA run of a window: runs with too few flows (complete: false)
    each miss a branch of the correlated 4 -> 2 chain, their union misses none."""
    results = measure(chain_4_2, 4, "mda_union")
    branches = {chain_4_2.router_address(n, 4) for d in TRUTH["chain_4_2"] for n in d[2]}
    found_by_run = [{node["address"] for node in r["nodes"]} & branches for r in results]
    assert any(found < branches for found in found_by_run)
    assert set().union(*found_by_run) == branches
    assert len({r["flow_seed"] for r in results}) == UNION_RUNS


def test_an_mda_result_is_one_path_over_every_branch_in_the_analysis(
        request: pytest.FixtureRequest) -> None:
    """The analysis pipeline turns an MDA result into one path verdict (kind ``mda``) that
    holds every branch router, from a self-hosted (home) vantage point, and publishes it."""
    from consumers.enrich import JurisdictionSettings, open_enricher
    from consumers.pipeline import AnalysisContext, WindowInput, analyse_rows
    from consumers.verdict_tables import path_message

    topology: Topology = request.getfixturevalue("diamond2")
    batch = normalized(measure(topology, 4, "mda"))
    enricher, registry = open_enricher(JurisdictionSettings())
    data = WindowInput(*EVERYTHING, batch.as_dicts("traceroute_hops"),
                       batch.as_dicts("mda_links"))
    analysis = analyse_rows(data, AnalysisContext(enricher, registry))
    (mda,) = [r for r in analysis.results if r.path.kind == "mda"]
    branch = {topology.router_address(n, 4) for n in ("a1", "a2")}
    assert branch <= {h.record.address for h in mda.hops}
    assert mda.home_set == "self" and mda.vantage is None
    message = path_message(mda)
    assert (message.kind, message.home_set, message.vantage_key) == (
        "mda", "self", "vp:test-vp-utrecht")
    assert [f.kind for f in analysis.findings] == ["load_balancer"]
