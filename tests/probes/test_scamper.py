"""ICMP and TCP Paris traceroute through scamper (needs root and Debian's scamper)."""

from __future__ import annotations

import shutil

import pytest

from probes.runners import run_task
from schemas.tasks import ProbeTask
from tests.probes.conftest import assert_sagan_parses, context_for
from tests.probes.testbed import Topology

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(shutil.which("scamper") is None,
                       reason="needs scamper (apt-get install -y scamper)"),
]


@pytest.mark.parametrize("af", [4, 6])
@pytest.mark.parametrize("protocol", ["icmp", "tcp"])
def test_scamper_paris_traceroute_is_atlas_format(
    diamond2: Topology, protocol: str, af: int
) -> None:
    target = diamond2.target4 if af == 4 else diamond2.target6
    paths = set()
    for paris_id in (0, 1, 2, 3):
        task = ProbeTask(task_id="s", kind="traceroute", target=target, af=af,
                         protocol=protocol, paris_id=paris_id)  # type: ignore[arg-type]
        [result] = run_task(task, context_for(diamond2, timeout_s=1.0))
        parsed = assert_sagan_parses(result)
        assert result["proto"] == protocol.upper() and result["gw_runner"] == "scamper"
        assert parsed.destination_ip_responded
        hops = [{p["from"] for p in hop["result"]} for hop in result["result"]]
        assert all(len(h) == 1 for h in hops), hops  # one flow, one path, 3 packets per hop
        assert all(len(hop["result"]) == 3 for hop in result["result"])
        paths.add(tuple(h.pop() for h in hops))
    assert all(path[0] == diamond2.router_address("r1", af) for path in paths)
