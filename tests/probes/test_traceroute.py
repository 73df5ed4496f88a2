"""Rootless UDP Paris traceroute through real namespaces (IPv4 and IPv6)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from probes.traceroute import run_traceroute
from schemas.errors import ProbeError, TargetNotAllowed
from schemas.tasks import ProbeTask
from schemas.vantage import is_self_hosted
from tests.probes.conftest import assert_sagan_parses, context_for
from tests.probes.testbed import Topology

pytestmark = pytest.mark.netns


def trace(topology: Topology, af: int, paris_id: int, **options: Any) -> dict[str, Any]:
    target = topology.target4 if af == 4 else topology.target6
    task = ProbeTask(task_id=f"t{paris_id}", kind="traceroute", target=target,
                     paris_id=paris_id, af=af, msm_id=7, options=options)
    [result] = run_traceroute(task, context_for(topology))
    assert_sagan_parses(result)
    return result


def path_of(result: dict[str, Any]) -> list[str]:
    """One address per hop; every packet of a hop must agree (Paris: one flow, one path)."""
    path = []
    for hop in result["result"]:
        addresses = {p.get("from", "*") for p in hop["result"]}
        assert len(addresses) == 1, f"hop {hop['hop']} answered from {addresses}"
        path.append(addresses.pop())
    return path


@pytest.mark.parametrize("af", [4, 6])
def test_paris_flow_is_stable_and_flows_take_both_branches(diamond2: Topology, af: int) -> None:
    branches = {diamond2.router_address("a1", af), diamond2.router_address("a2", af)}
    seen_branches = set()
    for paris_id in range(12):
        first, again = trace(diamond2, af, paris_id), trace(diamond2, af, paris_id)
        assert path_of(first) == path_of(again)
        path = path_of(first)
        assert path[0] == diamond2.router_address("r1", af)
        assert path[1] in branches
        assert path[-1] == (diamond2.target4 if af == 4 else diamond2.target6)
        seen_branches.add(path[1])
    assert seen_branches == branches


@pytest.mark.parametrize("af", [4, 6])
def test_atlas_fields_and_vantage_identity(diamond2: Topology, af: int) -> None:
    started = time.time()
    result = trace(diamond2, af, 3)
    parsed = assert_sagan_parses(result)
    assert result["type"] == "traceroute" and result["af"] == af
    assert result["proto"] == "UDP" and result["paris_id"] == 3 and result["msm_id"] == 7
    assert result["src_addr"] == diamond2.source_address(af)
    assert is_self_hosted(result["prb_id"])
    assert result["gw_vp"] == "test-vp-utrecht"
    assert result["gw_vp_location"]["city"] == "Utrecht"
    assert started - 1 <= result["timestamp"] <= result["endtime"] <= time.time() + 1
    assert parsed.destination_ip_responded and parsed.is_success
    assert parsed.total_hops == 4
    for hop in result["result"]:
        assert len(hop["result"]) == 3
        for packet in hop["result"]:
            assert packet["rtt"] >= 0 and packet["ttl"] == 65 - hop["hop"]


@pytest.mark.parametrize("af", [4, 6])
def test_silent_hop_gives_stars_and_the_trace_continues(silent_hop: Topology, af: int) -> None:
    result = trace(silent_hop, af, 0)
    parsed = assert_sagan_parses(result)
    assert result["result"][1]["result"] == [{"x": "*"}] * 3
    assert path_of(result)[2] == silent_hop.router_address("r2", af)
    assert parsed.destination_ip_responded


def test_unequal_branches_reach_the_destination_at_different_hops(unequal: Topology) -> None:
    lengths = {len(trace(unequal, 4, paris_id)["result"]) for paris_id in range(10)}
    assert lengths == {4, 5}


def test_target_without_a_route_is_a_probe_error(diamond2: Topology) -> None:
    task = ProbeTask(task_id="x", kind="traceroute", target="10.254.1.1")
    context = context_for(diamond2, allow=["10.254.0.0/16"])
    with pytest.raises(ProbeError, match="no route|cannot send"):
        run_traceroute(task, context)


def test_private_testbed_is_refused_unless_allowed(diamond2: Topology) -> None:
    task = ProbeTask(task_id="x", kind="traceroute", target=diamond2.target4)
    with pytest.raises(TargetNotAllowed, match="allow it explicitly"):
        run_traceroute(task, context_for(diamond2, allow=[]))
