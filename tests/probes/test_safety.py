"""What a vantage point refuses to probe, and how a task's options are held to its settings
(pure: no packet is sent; the bus test is in test_agent.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from probes.safety import MIN_PAYLOAD_SIZE, TargetPolicy, wrapped_ipv4
from probes.settings import MAX_RESOLVERS, ProbeSettings, task_options
from schemas.errors import InvalidTaskOptions, TargetNotAllowed
from schemas.tasks import ProbeTask


def teredo(server: str, client: str) -> str:
    """A Teredo address (RFC 4380): 2001:0:<server>:<flags>:<port ^ ffff>:<client ^ ffffffff>."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= (0x0000 << 48) | ((40000 ^ 0xFFFF) << 32)
    value |= int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    return str(ipaddress.IPv6Address(value))


def sixtofour(inner: str) -> str:
    return str(ipaddress.IPv6Address((0x2002 << 112) | (int(ipaddress.IPv4Address(inner)) << 80)
                                     | 1))


REFUSED = {
    "carrier-grade NAT": "100.64.0.1",
    "carrier-grade NAT, top": "100.127.255.254",
    "IPv6 site-local": "fec0::1",
    "IPv6 site-local, top": "feff:ffff::1",
    "6to4 of loopback": sixtofour("127.0.0.1"),
    "6to4 of RFC 1918": sixtofour("10.1.2.3"),
    "6to4 of carrier-grade NAT": sixtofour("100.64.0.9"),
    "Teredo, private client": teredo("193.0.14.129", "192.168.1.10"),
    "Teredo, loopback server": teredo("127.0.0.1", "8.8.8.8"),
    "IPv4-mapped loopback": "::ffff:127.0.0.1",
    "IPv4-mapped carrier-grade NAT": "::ffff:100.64.0.1",
    "NAT64 of RFC 1918": "64:ff9b::a00:1",
    "NAT64 of link-local": "64:ff9b::a9fe:1",
    "NAT64 local-use prefix": "64:ff9b:1::1",
    "loopback": "127.0.0.1",
    "private": "192.168.0.1",
}
ALLOWED = {
    "public IPv4": "192.88.100.1",
    "public IPv6": "2a00:1450:4001::1",
    "6to4 of a public address": sixtofour("193.0.14.129"),
    "IPv4-mapped public address": "::ffff:193.0.14.129",
    "NAT64 of a public address": "64:ff9b::c100:e81",
}


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_default_policy_refuses(address: str) -> None:
    with pytest.raises(TargetNotAllowed):
        TargetPolicy().check(address)


@pytest.mark.parametrize("address", ALLOWED.values(), ids=ALLOWED.keys())
def test_default_policy_allows_public_addresses_however_written(address: str) -> None:
    TargetPolicy().check(address)  # no packet: the policy only decides


def test_teredo_client_is_deobfuscated_and_both_ends_are_checked() -> None:
    address = ipaddress.IPv6Address(teredo("193.0.14.129", "192.168.1.10"))
    assert wrapped_ipv4(address) == (ipaddress.IPv4Address("193.0.14.129"),
                                     ipaddress.IPv4Address("192.168.1.10"))
    # allowing the Teredo prefix does not allow the private client inside it
    policy = TargetPolicy.from_strings(allow=["2001::/32"])
    with pytest.raises(TargetNotAllowed, match="wraps 192.168.1.10"):
        policy.check(str(address))
    TargetPolicy.from_strings(allow=["2001::/32", "192.168.0.0/16"]).check(
        str(address))


def test_a_wrapped_address_in_the_deny_list_is_refused() -> None:
    policy = TargetPolicy.from_strings(deny=["193.0.14.0/24"])
    for address in (sixtofour("193.0.14.129"), "::ffff:193.0.14.129", "64:ff9b::c100:e81"):
        with pytest.raises(TargetNotAllowed, match="deny-list"):
            policy.check(address)


def test_an_allowed_lab_network_is_allowed_inside_6to4_too() -> None:
    policy = TargetPolicy.from_strings(allow=["100.64.0.0/10"])
    policy.check("100.64.0.1")
    policy.check(sixtofour("100.64.0.1"))
    with pytest.raises(TargetNotAllowed):
        policy.check(sixtofour("10.0.0.1"))


# -- task options ---------------------------------------------------------------------------

SETTINGS = ProbeSettings(max_hops=16, packets=3, gap_limit=4, timeout_s=0.5, payload_size=64,
                         mda_max_flows=128, mda_confidence=0.95, dns_timeout_s=2.0)


def task(kind: str = "traceroute", **options: Any) -> ProbeTask:
    return ProbeTask(task_id="x", kind=kind, target="192.88.100.1",  # type: ignore[arg-type]
                     options=options)


def test_no_options_means_the_settings() -> None:
    options = task_options(task(), SETTINGS)
    assert (options.max_hops, options.packets, options.gap_limit, options.timeout_s,
            options.size) == (16, 3, 4, 0.5, 64)
    assert options.clamped == ()
    assert task_options(task("dns"), SETTINGS).timeout_s == 2.0


def test_more_than_the_settings_is_lowered_to_them() -> None:
    options = task_options(task(max_hops=255, packets=16, gap_limit=64, timeout_s=60,
                                size=1400), SETTINGS)
    assert (options.max_hops, options.packets, options.gap_limit, options.timeout_s,
            options.size) == (16, 3, 4, 0.5, 64)
    assert set(options.clamped) == {"max_hops", "packets", "gap_limit", "timeout_s", "size"}
    mda = task_options(task("mda", max_flows=100_000, confidence=0.99), SETTINGS)
    assert (mda.max_flows, mda.confidence) == (128, 0.95)
    assert set(mda.clamped) == {"max_flows", "confidence"}
    assert task_options(task("dns", timeout_s=30), SETTINGS).timeout_s == 2.0


def test_less_than_the_settings_is_kept() -> None:
    options = task_options(task(max_hops=8, packets=1, timeout_s=0.2, size=MIN_PAYLOAD_SIZE),
                           SETTINGS)
    assert (options.max_hops, options.packets, options.timeout_s, options.size) == (
        8, 1, 0.2, MIN_PAYLOAD_SIZE)
    assert options.clamped == ()
    assert task_options(task("mda", seed=7, max_flows=16), SETTINGS).seed == 7


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("traceroute", {"max_hop": 5}, "unknown"),
        ("traceroute", {"confidence": 0.99}, "unknown"),  # an MDA option
        ("dns", {"packets": 3}, "unknown"),
        ("traceroute", {"packets": "lots"}, "number"),
        ("traceroute", {"packets": True}, "number"),
        ("traceroute", {"packets": 2.5}, "whole"),
        ("traceroute", {"max_hops": 0}, "below"),
        ("traceroute", {"timeout_s": 0}, "below"),
        ("traceroute", {"timeout_s": float("nan")}, "number"),
        ("traceroute", {"size": 4}, "below"),
        ("mda", {"confidence": 0.5}, "0.95 or 0.99"),
        ("mda", {"seed": -1}, "seed"),
        ("traceroute", {"port": 70000}, "port"),
        ("dns", {"resolvers": "192.88.100.1"}, "list"),
        ("dns", {"resolvers": ["192.88.100.1"] * (MAX_RESOLVERS + 1)}, "entries"),
        ("dns", {"query_types": ["A; rm"]}, "bad type"),
    ],
)
def test_nonsense_options_are_refused(kind: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTaskOptions, match=message):
        task_options(task(kind, **options), SETTINGS)
