"""The rootless path on the loopback interface (no root, no namespace): error-queue
parsing, the payload marker, target policy, pacing and the CLI."""

from __future__ import annotations

import json
import socket
import time

import pytest
from typer.testing import CliRunner

from grenswacht.cli import app
from probes.context import RunContext
from probes.flows import Probe, UdpFlowProber
from probes.safety import PAYLOAD_MARKER, Pacer, TargetPolicy, payload_sequence, probe_payload
from probes.settings import ProbeSettings
from probes.traceroute import run_traceroute
from schemas.errors import ProbeError, TargetNotAllowed
from schemas.tasks import ProbeTask
from schemas.vantage import default_probe_id, is_self_hosted
from tests.probes.conftest import CHAIN, assert_sagan_parses
from tests.probes.dnsserver import ChainServer

LOOPBACK = {4: "127.0.0.1", 6: "::1"}


def loopback_context(**overrides: object) -> RunContext:
    values: dict[str, object] = {"allow": ["127.0.0.0/8", "::1/128"], "timeout_s": 0.5}
    values.update(overrides)
    return RunContext.from_settings(ProbeSettings(**values))  # type: ignore[arg-type]


@pytest.mark.parametrize("af", [4, 6])
def test_loopback_trace_reads_port_unreachable_from_the_error_queue(af: int) -> None:
    task = ProbeTask(task_id="l", kind="traceroute", target=LOOPBACK[af], af=af, paris_id=9)
    [result] = run_traceroute(task, loopback_context())
    parsed = assert_sagan_parses(result)
    assert parsed.destination_ip_responded and parsed.total_hops == 1
    packets = result["result"][0]["result"]
    assert [p["from"] for p in packets] == [LOOPBACK[af]] * 3
    assert all(p["ttl"] == 64 and p["size"] > 48 for p in packets)
    assert is_self_hosted(result["prb_id"]) and result["prb_id"] == default_probe_id("local")


def test_probe_payload_carries_the_marker_and_the_flow_ports() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(2)
        port = server.getsockname()[1]
        with UdpFlowProber("127.0.0.1", 4, timeout_s=0.05, destination_port=port) as prober:
            assert prober.probe([Probe(4, 1), Probe(7, 1)]) == [None, None]  # server is silent
            assert prober.probes_sent == 2
        got = sorted(server.recvfrom(2048) for _ in range(2))
    for (payload, (_, source_port)), flow in zip(got, (4, 7), strict=True):
        assert PAYLOAD_MARKER.strip() in payload and len(payload) == 48
        assert b"grenswacht" in payload
        assert source_port == prober.flow_ports(flow)[0]
        assert payload_sequence(payload) is not None


def test_payload_sequence_round_trip_and_minimum_size() -> None:
    assert payload_sequence(probe_payload(123456, 64)) == 123456
    assert payload_sequence(b"something else") is None
    with pytest.raises(ProbeError):
        probe_payload(1, 8)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("127.0.0.1", False), ("10.1.2.3", False), ("192.168.1.1", False), ("fe80::1", False),
     ("240.0.0.1", False), ("2001:db8::1", False), ("193.0.6.139", True),
     ("2001:67c:2e8:22::c100:68b", True)],
)
def test_default_policy_refuses_special_ranges(address: str, allowed: bool) -> None:
    policy = TargetPolicy()
    if allowed:
        policy.check(address)
    else:
        with pytest.raises(TargetNotAllowed):
            policy.check(address)


def test_allow_and_deny_lists() -> None:
    policy = TargetPolicy.from_strings(allow=["10.9.0.0/16"], deny=["193.0.0.0/21",
                                                                     "10.9.9.0/24"])
    policy.check("10.9.1.1")
    for refused in ("10.9.9.9", "193.0.6.139", "10.8.0.1"):
        with pytest.raises(TargetNotAllowed):
            policy.check(refused)
    with pytest.raises(ProbeError):
        TargetPolicy.from_strings(allow=["not-a-network"])


def test_pacer_caps_probes_per_second() -> None:
    pacer = Pacer(rate=200, burst=5)
    started = time.monotonic()
    for _ in range(45):
        pacer.acquire()
    assert time.monotonic() - started >= (45 - 5) / 200 * 0.9


def test_cli_trace_json_and_refusal() -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["probe", "trace", "127.0.0.1", "--allow", "127.0.0.0/8",
                               "--format", "json", "--paris-id", "2"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["paris_id"] == 2 and result["result"][0]["result"][0]["from"] == "127.0.0.1"
    assert_sagan_parses(result)
    refused = runner.invoke(app, ["probe", "trace", "127.0.0.1"])
    assert refused.exit_code == 2 and "allow it explicitly" in refused.output


def test_cli_dns_against_a_loopback_server() -> None:
    server = ChainServer(CHAIN, {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]},
                         listen=["127.0.0.1"], port=0)
    server.start()  # binds a free port (no port picked first and freed: another suite may take it)
    try:
        done = CliRunner().invoke(app, [
            "probe", "dns", "www.gemeente.test", "--resolver", "127.0.0.1",
            "--port", str(server.port), "--allow", "127.0.0.0/8", "--format", "json"])
    finally:
        server.stop()
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    parsed = assert_sagan_parses(result)
    targets = [a.target for a in parsed.responses[0].abuf.answers if a.type == "CNAME"]
    assert targets == CHAIN[1:]
    assert server.queries == [("www.gemeente.test.", "A"), ("www.gemeente.test.", "AAAA")]


def test_cli_mda_takes_the_operator_confidence_and_replays_a_seed() -> None:
    runner = CliRunner()
    args = ["probe", "trace", "127.0.0.1", "--allow", "127.0.0.0/8", "--mda",
            "--confidence", "0.99", "--seed", "5", "--format", "json", "--timeout", "0.5"]
    first, again = (json.loads(runner.invoke(app, args).output) for _ in range(2))
    assert first["confidence"] == 0.99  # the CLI sets the limit, it is not a bus task
    assert first["flow_seed"] == again["flow_seed"] == 5
    assert first["nodes"] == again["nodes"] and first["reached"]
    assert runner.invoke(app, ["probe", "trace", "127.0.0.1", "--seed", "5"]).exit_code == 2
