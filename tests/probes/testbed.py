"""Network-namespace topologies with real routers, ECMP and a silent hop.

A topology is a DAG from ``src`` (where the prober runs) to ``dst`` (which holds the
target addresses on its loopback interface). Every edge is a veth pair with a /30 and a /64
from the topology's own ranges (``10.<index>.<edge>.0/30``, ``2001:db8:<index>:<edge>::/64``,
addresses used only inside these namespaces). Each node routes the target over *all* its
forward edges (ECMP, L4 hash policy 1) and the prober's address back over its first
incoming edge. Every router hashes with the same seed, so consecutive diamonds are
*correlated*, as behind routers of one vendor: a flow's branch in one diamond decides its
branch in the next. IPv4 uses ``fib_multipath_hash_seed`` (per namespace since Linux
6.11; ``hash_seeds`` gives a router its own); IPv6 hashes with the kernel's one random
key, shared by every namespace and new at every boot, so IPv6 routes are fixed within a
boot only and ``hash_seeds`` does not change them. A router listed in ``silent`` drops
the ICMP it generates (policy rule ``iif lo ipproto icmp`` -> blackhole table), so it
forwards but never answers; no nftables/iptables needed. ICMP rate limits are switched off
in every namespace, so the many probes of MDA are all answered.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import shutil
import subprocess
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_COUNTER = itertools.count(1)
HASH_SEED = 20260101


def netns_unavailable_reason() -> str | None:
    """Why namespace tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` command"
    name = f"gwprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Topology:
    """Build with :meth:`build`, always :meth:`destroy` (the fixtures do)."""

    edges: Sequence[tuple[str, str]]
    silent: Sequence[str] = ()
    # routers that hash with their own seed (independent of the others' choices)
    hash_seeds: Mapping[str, int] = field(default_factory=dict)
    # The address plan depends on the topology's shape only (not on how many topologies
    # the process built before), so with the fixed hash seed a topology routes every flow
    # the same way in every run, alone or in the whole suite: reproducible results.
    index: int = -1
    serial: int = field(default_factory=lambda: next(_COUNTER))
    namespaces: dict[str, str] = field(default_factory=dict)
    # address of node on an edge: (edge_number, node) -> (ipv4, ipv6)
    addresses: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.index < 0:
            shape = repr((list(self.edges), list(self.silent))).encode()
            self.index = 100 + zlib.crc32(shape) % 150

    @property
    def target4(self) -> str:
        return f"10.{self.index}.255.1"

    @property
    def target6(self) -> str:
        return f"2001:db8:{self.index}:ffff::1"

    @property
    def network4(self) -> str:
        return f"10.{self.index}.0.0/16"

    @property
    def network6(self) -> str:
        return f"2001:db8:{self.index}::/48"

    def ns(self, node: str) -> str:
        return self.namespaces[node]

    def nodes(self) -> list[str]:
        seen: list[str] = []
        for a, b in self.edges:
            for node in (a, b):
                if node not in seen:
                    seen.append(node)
        return seen

    def router_address(self, node: str, af: int) -> str:
        """The address ``node`` answers from: its end of its first incoming edge."""
        for number, (_a, b) in enumerate(self.edges):
            if b == node:
                v4, v6 = self.addresses[(number, node)]
                return v4 if af == 4 else v6
        raise KeyError(node)

    def interface_addresses(self, node: str, af: int) -> set[str]:
        """Every address ``node`` may answer from: its ends of all its incoming edges (IPv6
        answers from the interface the probe came in on)."""
        return {self.addresses[(number, node)][0 if af == 4 else 1]
                for number, (_a, b) in enumerate(self.edges) if b == node}

    def source_address(self, af: int) -> str:
        for number, (a, _b) in enumerate(self.edges):
            if a == "src":
                v4, v6 = self.addresses[(number, "src")]
                return v4 if af == 4 else v6
        raise KeyError("src")

    def build(self) -> Topology:
        for node in self.nodes():
            name = f"gw{os.getpid()}t{self.serial}{node}"
            ip("netns", "add", name)
            self.namespaces[node] = name
            self._sysctl(
                node,
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv4.fib_multipath_hash_policy=1",
                "net.ipv6.fib_multipath_hash_policy=1",
                f"net.ipv4.fib_multipath_hash_seed={self.hash_seeds.get(node, HASH_SEED)}",
                "net.ipv4.icmp_ratelimit=0",
                "net.ipv6.icmp.ratelimit=0",
                "net.ipv4.icmp_msgs_per_sec=1000000",
                "net.ipv4.icmp_msgs_burst=100000",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            )
            ip("-n", name, "link", "set", "lo", "up")
        for number, (a, b) in enumerate(self.edges):
            end_a, end_b = f"e{number}a", f"e{number}b"
            ip("link", "add", end_a, "netns", self.ns(a), "type", "veth",
               "peer", "name", end_b, "netns", self.ns(b))
            for node, dev, host in ((a, end_a, 1), (b, end_b, 2)):
                v4 = f"10.{self.index}.{number}.{host}"
                v6 = str(ipaddress.ip_address(f"2001:db8:{self.index}:{number}::{host}"))
                ip("-n", self.ns(node), "addr", "add", f"{v4}/30", "dev", dev)
                ip("-n", self.ns(node), "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
                ip("-n", self.ns(node), "link", "set", dev, "up")
                self.addresses[(number, node)] = (v4, v6)
        dst = self.ns("dst")
        ip("-n", dst, "addr", "add", f"{self.target4}/32", "dev", "lo")
        ip("-n", dst, "-6", "addr", "add", f"{self.target6}/128", "dev", "lo", "nodad")
        self._neighbours()
        self._routes()
        for node in self.silent:
            self._silence(node)
        return self

    def _sysctl(self, node: str, *settings: str) -> None:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns(node), "sysctl", "-q", "-w", *settings],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sysctl in {node}: {done.stderr.strip()}")

    def _neighbours(self) -> None:
        """Permanent neighbour entries on every veth, so no probe waits for ARP/ND (the
        first IPv6 probes through a fresh branch were otherwise lost or delayed)."""
        for number, (a, b) in enumerate(self.edges):
            for node, dev, peer, peer_dev in ((a, f"e{number}a", b, f"e{number}b"),
                                              (b, f"e{number}b", a, f"e{number}a")):
                shown = subprocess.run(
                    ["ip", "-j", "-n", self.ns(peer), "link", "show", "dev", peer_dev],
                    capture_output=True, text=True, check=True,
                )
                mac = json.loads(shown.stdout)[0]["address"]
                for address in self.addresses[(number, peer)]:
                    ip("-n", self.ns(node), "neigh", "replace", address, "lladdr", mac,
                       "dev", dev, "nud", "permanent")

    def _routes(self) -> None:
        targets = {4: f"{self.target4}/32", 6: f"{self.target6}/128"}
        sources = {4: f"{self.source_address(4)}/32", 6: f"{self.source_address(6)}/128"}
        for node in self.nodes():
            name = self.ns(node)
            if node != "dst":
                outgoing = [(n, b) for n, (a, b) in enumerate(self.edges) if a == node]
                for af, column in ((4, 0), (6, 1)):
                    hops: list[str] = []
                    for number, peer in outgoing:
                        gateway = self.addresses[(number, peer)][column]
                        hops += ["nexthop", "via", gateway, "dev", f"e{number}a"]
                    if len(outgoing) == 1:
                        hops = hops[1:]
                    ip("-n", name, f"-{af}", "route", "add", targets[af], *hops)
            if node != "src":
                number, upstream = next(
                    (n, a) for n, (a, b) in enumerate(self.edges) if b == node
                )
                for af, column in ((4, 0), (6, 1)):
                    gateway = self.addresses[(number, upstream)][column]
                    ip("-n", name, f"-{af}", "route", "add", sources[af],
                       "via", gateway, "dev", f"e{number}b")

    def _silence(self, node: str) -> None:
        name = self.ns(node)
        ip("-n", name, "rule", "add", "pref", "100", "iif", "lo", "ipproto", "icmp",
           "lookup", "100")
        ip("-n", name, "route", "add", "blackhole", "default", "table", "100")
        ip("-n", name, "-6", "rule", "add", "pref", "100", "iif", "lo", "ipproto",
           "ipv6-icmp", "lookup", "100")
        ip("-n", name, "-6", "route", "add", "blackhole", "default", "table", "100")

    def destroy(self) -> None:
        for name in self.namespaces.values():
            with contextlib.suppress(Exception):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.namespaces.clear()


def diamond2() -> Topology:
    return Topology([("src", "r1"), ("r1", "a1"), ("r1", "a2"), ("a1", "r2"), ("a2", "r2"),
                     ("r2", "dst")])


def diamond3() -> Topology:
    return Topology([("src", "r1"), ("r1", "a1"), ("r1", "a2"), ("r1", "a3"), ("a1", "r2"),
                     ("a2", "r2"), ("a3", "r2"), ("r2", "dst")])


def diamond_chain(*widths: int) -> Topology:
    """Consecutive diamonds: ``r1`` fans out to ``a1..aW`` which meet at ``r2``, which fans out
    to ``b1..`` and so on, then ``dst``. Every router hashes with the same seed, so the
    diamonds are *correlated*: a flow's branch in one diamond decides its branch in the
    next (hash-threshold ECMP: 2 -> 2 sends every flow of a1 to b1)."""
    edges = [("src", "r1")]
    for number, width in enumerate(widths, start=1):
        letter = "abcdefgh"[number - 1]
        edges += [(f"r{number}", f"{letter}{i}") for i in range(1, width + 1)]
        edges += [(f"{letter}{i}", f"r{number + 1}") for i in range(1, width + 1)]
    return Topology([*edges, (f"r{len(widths) + 1}", "dst")])


def two_diamonds() -> Topology:
    return diamond_chain(2, 2)


def meshed() -> Topology:
    """r1 -> a1, a2; each of a1, a2 -> b1, b2 (a meshed diamond); b1, b2 -> r2. a1 and a2
    hash with their own IPv4 seeds: with r1's seed every flow of a1 would take b1 and every
    flow of a2 b2 (hash-threshold ECMP), and the mesh links would carry no flow at all —
    as they do not over IPv6, where every router shares the kernel's key."""
    return Topology([("src", "r1"), ("r1", "a1"), ("r1", "a2"), ("a1", "b1"), ("a1", "b2"),
                     ("a2", "b1"), ("a2", "b2"), ("b1", "r2"), ("b2", "r2"), ("r2", "dst")],
                    hash_seeds={"a1": 11, "a2": 12})


def unequal() -> Topology:
    return Topology([("src", "r1"), ("r1", "a1"), ("r1", "b1"), ("a1", "r2"), ("b1", "b2"),
                     ("b2", "r2"), ("r2", "dst")])


def silent_hop() -> Topology:
    return Topology([("src", "r1"), ("r1", "s1"), ("s1", "r2"), ("r2", "dst")], silent=["s1"])
