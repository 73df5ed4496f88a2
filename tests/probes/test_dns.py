"""DNS runner against a dnspython server in a namespace: CNAME chain, A/AAAA, resultset."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest

from probes.dns import run_dns
from schemas.tasks import ProbeTask
from tests.probes.conftest import CHAIN, assert_sagan_parses, context_for
from tests.probes.dnsserver import ChainServer
from tests.probes.testbed import Topology

pytestmark = pytest.mark.netns


def answers(parsed: Any) -> list[tuple[str, str, str]]:
    out = []
    for response in parsed.responses:
        for answer in response.abuf.answers:
            out.append(record(answer))
    return out


def chain_records(last: str, qtype: str, address: str) -> list[tuple[str, str, str]]:
    cnames = [(CHAIN[i], "CNAME", CHAIN[i + 1]) for i in range(len(CHAIN) - 1)]
    return [*cnames, (last, qtype, address)]


def test_a_and_aaaa_decode_to_the_served_cname_chain(
    diamond2: Topology, dns_server: ChainServer
) -> None:
    task = ProbeTask(task_id="d", kind="dns", target="www.gemeente.test", msm_id=9,
                     options={"resolvers": [diamond2.target4]})
    [result] = run_dns(task, context_for(diamond2))
    assert result["gw_query"] == {"name": "www.gemeente.test", "types": ["A", "AAAA"]}
    parsed = assert_sagan_parses(result)
    a, aaaa = parsed.responses
    assert answers_of(a) == chain_records(CHAIN[-1], "A", diamond2.target4)
    assert answers_of(aaaa) == chain_records(CHAIN[-1], "AAAA", diamond2.target6)
    assert result["dst_addr"] == diamond2.target4 and result["proto"] == "UDP"
    for entry, response in zip(result["resultset"], parsed.responses, strict=True):
        assert entry["src_addr"] == diamond2.source_address(4)
        assert response.response_time > 0
        assert response.qbuf.questions[0].name == "www.gemeente.test."
        assert entry["result"]["size"] == len(base64.b64decode(entry["result"]["abuf"]))


def test_one_query_is_a_flat_atlas_result(diamond2: Topology, dns_server: ChainServer) -> None:
    task = ProbeTask(task_id="d", kind="dns", target="edge.cdn.test",
                     options={"resolvers": [diamond2.target6], "query_types": ["AAAA"]})
    [result] = run_dns(task, context_for(diamond2))
    assert "resultset" not in result and "qbuf" in result and result["af"] == 6
    parsed = assert_sagan_parses(result)
    assert answers(parsed) == [("edge.cdn.test.", "AAAA", diamond2.target6)]


def test_several_resolvers_give_a_resultset_over_tcp(
    diamond2: Topology, dns_server: ChainServer
) -> None:
    task = ProbeTask(task_id="d", kind="dns", target="app.saas-vendor.test", protocol="tcp",
                     options={"resolvers": [diamond2.target4, diamond2.target6],
                              "query_types": ["AAAA"]})
    [result] = run_dns(task, context_for(diamond2))
    parsed = assert_sagan_parses(result)
    assert [entry["subid"] for entry in result["resultset"]] == [1, 2]
    assert {entry["af"] for entry in result["resultset"]} == {4, 6}
    assert len(parsed.responses) == 2
    for response in parsed.responses:
        assert response.protocol == "TCP"
        assert answers_of(response) == [
            ("app.saas-vendor.test.", "CNAME", "edge.cdn.test."),
            ("edge.cdn.test.", "AAAA", diamond2.target6),
        ]


def answers_of(response: Any) -> list[tuple[str, str, str]]:
    return [record(a) for a in response.abuf.answers]


def record(answer: Any) -> tuple[str, str, str]:
    """(name, type, value); addresses in canonical text form (sagan does not compress)."""
    address = getattr(answer, "address", None)
    value = str(ipaddress.ip_address(address)) if address else answer.target
    return answer.name, answer.type, value


def test_a_resolver_that_does_not_answer_is_an_atlas_timeout(diamond2: Topology) -> None:
    task = ProbeTask(task_id="d", kind="dns", target="www.gemeente.test",
                     options={"resolvers": [diamond2.router_address("r1", 4)],
                              "query_types": ["A"], "timeout_s": 0.3, "port": 5353})
    [result] = run_dns(task, context_for(diamond2))
    # r1 has no server: ICMP port unreachable -> socket error; sagan reports an error
    assert "error" in result and "result" not in result
