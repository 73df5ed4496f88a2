"""MDA — the Multipath Detection Algorithm (Augustin, Friedman, Teixeira, 2007; Veitch et al.,
2009) over the rootless UDP prober, producing a ``type: "mda"`` result
(``schemas/jsonschema/mda.schema.json``). docs/probes.md explains it with figures.

**Stopping rule.** For every vertex (interface) at hop ``t`` MDA sends probes to hop ``t + 1``
on flows known to pass through it until, had there been one more successor than the ``k``
seen, it would have been seen: with ``K`` equally likely successors ``n`` probes miss one with
probability at most ``K * ((K - 1) / K) ** n``, so the test stops at ``n_k``, the least ``n``
with ``(k + 1) * (k / (k + 1)) ** n <= 1 - c`` (:func:`stopping_point`; ``c = 0.95`` gives
Augustin et al.'s 6, 11, 16, 21, ...).

**Confidence of the whole run.** A run makes ``H`` such tests (one per vertex, plus one per
predecessor of a vertex with several, see below); each test gets ``c = confidence ** (1/H)``
(Šidák), so the whole run misses nothing with at least the stated ``confidence`` under the
MDA model. ``H`` grows while the run discovers vertices, so the run makes passes over all
hops until one pass sends no probe (the adaptive ε of Diamond-Miner).

**Flows.** Flow ids are drawn from a seeded random permutation of the flow space (source
port ``33000 + flow id``, ``FLOW_SPACE`` ids), fresh each run; the seed is recorded
(``flow_seed``) and a task's ``seed`` option replays a run. With one fixed mapping every run
would send the same 5-tuples and a hash-correlated load balancer would hide the same branch
every time. A flow whose source port is held by another socket is skipped.

**Correlated and meshed load balancers.** The successors of a vertex are explored with flows
drawn uniformly at random from *all* flows known to reach it, not from those of one
predecessor. When routers hash with the same function (Linux namespaces share one hash
seed; routers of one vendor commonly do), which branch a flow takes at the second diamond
depends on the branch it took at the first, so a vertex with several predecessors is also
tested per predecessor: the flows that came through each predecessor must meet the stopping
rule on their own. Node control (a vertex, or one predecessor's share of it, has too few
known flows) first probes flows known one hop earlier, then fresh flows one hop earlier and
at the vertex's hop. The result reports the checks: ``meshed_ttls`` (hop pairs where a
vertex has two or more successors and a vertex of the next hop two or more predecessors,
MDA-Lite's meshing) and ``correlated_nodes`` (a predecessor whose flows met the stopping rule
yet reached only part of the vertex's successors).

A hop with no answer is the vertex ``null``; its flows are still followed. A flow stops at
the destination or at an ICMP unreachable error.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from probes.context import RunContext, now
from probes.flows import DEFAULT_SOURCE_PORT_BASE, Probe, UdpFlowProber, prober_for, target_of
from probes.settings import task_options
from schemas.tasks import ProbeTask

Address = str | None
SOURCE = "<source>"
UNKNOWN = "<unknown>"  # a flow not probed one hop earlier: its predecessor is not known
ANY = "<any>"  # every predecessor
FLOW_SPACE = 65535 - DEFAULT_SOURCE_PORT_BASE
MAX_NODE_CONTROL_ROUNDS = 12
MAX_PASSES = 6
MAX_FRESH_PER_ROUND = 64
MIN_TESTS = 30
"""The run's confidence is spread over at least this many tests (a path of some 30
vertices, as Veitch et al. bound the route's size in advance): counting only the tests of
the vertices found would give a run that missed a branch fewer tests, so larger per-test
failure, exactly when it matters."""


@lru_cache(maxsize=4096)
def stopping_point(successors_seen: int, confidence: float) -> int:
    """``n_k``: probes needed through a vertex with ``k`` successors seen so far."""
    k = max(successors_seen, 1)
    alpha = 1.0 - confidence
    return math.ceil(math.log(alpha / (k + 1)) / math.log(k / (k + 1)))


def per_test_confidence(confidence: float, tests: int) -> float:
    """The confidence of each of ``tests`` tests so that all hold with ``confidence``."""
    return float(confidence ** (1.0 / max(tests, MIN_TESTS)))


@dataclass
class MdaRun:
    prober: UdpFlowProber
    destination: str
    confidence: float
    seed: int = 0
    max_flows: int = 256
    max_hops: int = 32
    gap_limit: int = 3
    flows_at: dict[int, dict[int, Address]] = field(default_factory=lambda: defaultdict(dict))
    terminal: set[tuple[int, int]] = field(default_factory=set)  # (ttl, flow) that ended
    complete: bool = True
    stop_reason: str = "max_hops"
    passes: int = 0
    _rng: random.Random = field(init=False)
    _tried: set[int] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - replayable, not a secret

    # -- probing ---------------------------------------------------------------------------

    def _send(self, pairs: Iterable[tuple[int, int]]) -> None:
        pairs = list(pairs)
        replies = self.prober.probe([Probe(flow, ttl) for flow, ttl in pairs])
        for (flow, ttl), reply in zip(pairs, replies, strict=True):
            self.flows_at[ttl][flow] = reply.address if reply else None
            if reply is not None and (
                reply.reached or reply.error_flag or reply.address == self.destination
            ):
                self.terminal.add((ttl, flow))

    def _fresh(self, count: int) -> list[int]:
        """Up to ``count`` new flow ids, next in this run's seeded order (ttl 0: the source)."""
        out: list[int] = []
        attempts = 0
        while (len(out) < count and len(self.flows_at[0]) < self.max_flows
               and attempts < 4 * count + 64):
            attempts += 1
            flow = self._rng.randrange(FLOW_SPACE)
            if flow in self._tried:
                continue
            self._tried.add(flow)
            if self.prober.claim(flow):
                self.flows_at[0][flow] = SOURCE
                out.append(flow)
        return out

    # -- the graph so far ------------------------------------------------------------------

    def _vertices(self, ttl: int) -> dict[Address, list[int]]:
        if ttl == 0:
            return {SOURCE: sorted(self.flows_at[0])}
        groups: dict[Address, list[int]] = defaultdict(list)
        for flow, address in sorted(self.flows_at[ttl].items()):
            if (ttl, flow) not in self.terminal:
                groups[address].append(flow)
        return groups

    def _strata(self, ttl: int, flows: list[int]) -> dict[Address, list[int]]:
        """The flows of one vertex by the vertex they came through (known ones only)."""
        if ttl == 0:
            return {}
        before = self.flows_at.get(ttl - 1, {})
        out: dict[Address, list[int]] = defaultdict(list)
        for flow in flows:
            predecessor = before.get(flow, UNKNOWN) if ttl > 1 else SOURCE
            if predecessor != UNKNOWN:
                out[predecessor].append(flow)
        return out

    def tests(self) -> int:
        """``H``: the stopping-rule tests of the vertices found so far."""
        count = 0
        for ttl in list(self.flows_at):
            for flows in self._vertices(ttl).values():
                strata = self._strata(ttl, flows)
                count += 1 + (len(strata) if len(strata) > 1 else 0)
        return count

    def _rules(self, ttl: int, flows: list[int]) -> list[tuple[bool, Address, list[int]]]:
        """(per predecessor?, predecessor, flows) for every test of one vertex."""
        strata = self._strata(ttl, flows)
        rules = [(True, p, f) for p, f in strata.items()] if len(strata) > 1 else []
        return [*rules, (False, None, flows)]

    # -- exploration -----------------------------------------------------------------------

    def _explore(self, ttl: int) -> None:
        """Probe hop ``ttl + 1`` until every test of every vertex at ``ttl`` holds."""
        control_rounds = 0
        following = self.flows_at[ttl + 1]
        while True:
            confidence = per_test_confidence(self.confidence, self.tests())
            chosen: set[int] = set()
            deficits: list[tuple[Address, bool, Address, int]] = []
            for vertex, flows in self._vertices(ttl).items():
                for stratum, predecessor, members in self._rules(ttl, flows):
                    probed = [f for f in members if f in following]
                    seen = len({following[f] for f in probed})
                    unprobed = [f for f in members if f not in following and f not in chosen]
                    planned = sum(1 for f in members if f in chosen)
                    need = stopping_point(seen, confidence) - len(probed) - planned
                    if need <= 0:
                        continue
                    take = self._rng.sample(unprobed, min(need, len(unprobed)))
                    chosen.update(take)
                    if need > len(take):
                        deficits.append((vertex, stratum, predecessor, need - len(take)))
            if chosen:
                self._send((flow, ttl + 1) for flow in sorted(chosen))
                continue
            if not deficits:
                return
            control_rounds += 1
            if control_rounds > MAX_NODE_CONTROL_ROUNDS or not self._node_control(ttl, deficits):
                self.complete = False
                return

    def _share(self, ttl: int, vertex: Address, predecessor: Address) -> float:
        """Of the flows probed at ``ttl`` (from ``predecessor``, or all: :data:`ANY`), the
        share at ``vertex``."""
        before = self.flows_at.get(ttl - 1, {})
        here = [a for f, a in self.flows_at[ttl].items()
                if predecessor == ANY or before.get(f, UNKNOWN) == predecessor]
        return max(here.count(vertex) / len(here), 1 / 64) if here else 1.0

    def _node_control(self, ttl: int, deficits: list[tuple[Address, bool, Address, int]]) -> bool:
        """More flows through the vertices (or their predecessors' shares) that lack them."""
        if ttl == 0:
            return bool(self._fresh(sum(d for *_, d in deficits)))
        before, here = self.flows_at[ttl - 1], self.flows_at[ttl]
        pairs: list[tuple[int, int]] = []
        used: set[int] = set()
        budget = MAX_FRESH_PER_ROUND
        for vertex, stratum, predecessor, missing in deficits:
            share = self._share(ttl, vertex, predecessor if stratum else ANY)
            wanted = min(math.ceil(missing / share), MAX_FRESH_PER_ROUND)
            # flows known one hop earlier (through the predecessor) not yet probed here
            pool = sorted(f for f, a in before.items()
                          if f not in here and f not in used and (ttl - 1, f) not in self.terminal
                          and (not stratum or a == predecessor))
            take = self._rng.sample(pool, min(wanted, len(pool)))
            used.update(take)
            pairs += [(flow, ttl) for flow in take]
            wanted -= len(take)
            if wanted <= 0 or budget <= 0:
                continue
            if stratum and ttl > 1:
                # fresh flows probed one hop earlier too, so their predecessor is known
                upstream = max(list(before.values()).count(predecessor) / len(before), 1 / 64)
                fresh = self._fresh(min(math.ceil(wanted / upstream), budget))
                pairs += [(flow, ttl - 1) for flow in fresh] + [(flow, ttl) for flow in fresh]
            else:
                fresh = self._fresh(min(wanted, budget))
                pairs += [(flow, ttl) for flow in fresh]
            budget -= len(fresh)
        if not pairs:
            return False
        self._send(pairs)
        return True

    def _pass(self) -> None:
        silent = 0
        for ttl in range(0, self.max_hops):
            self._explore(ttl)
            answers = self.flows_at[ttl + 1]
            if not any((ttl + 1, f) not in self.terminal for f in answers):
                self.stop_reason = "destination" if answers else "no_flows"
                return
            silent = 0 if any(a is not None for a in answers.values()) else silent + 1
            if silent >= self.gap_limit:
                self.stop_reason = "gap_limit"
                return
        self.stop_reason = "max_hops"

    def run(self) -> None:
        """Passes over every hop until one sends no probe: every test then holds at the
        confidence that the final number of tests asks for."""
        for number in range(1, MAX_PASSES + 1):
            self.passes = number
            self.complete = True
            before = self.prober.probes_sent
            self._pass()
            if self.prober.probes_sent == before:
                return
        self.complete = False

    # -- the result ------------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        out = []
        for ttl in sorted(t for t in self.flows_at if t > 0):
            groups: dict[Address, list[int]] = defaultdict(list)
            for flow, address in self.flows_at[ttl].items():
                groups[address].append(flow)
            for address, flows in sorted(groups.items(), key=lambda i: str(i[0])):
                out.append({"ttl": ttl, "address": address, "flow_ids": sorted(flows)})
        return out

    def _pairs(self, ttl: int) -> dict[tuple[Address, Address], list[int]]:
        near, far = self.flows_at[ttl], self.flows_at.get(ttl + 1, {})
        pairs: dict[tuple[Address, Address], list[int]] = defaultdict(list)
        for flow in sorted(near.keys() & far.keys()):
            if (ttl, flow) not in self.terminal:
                pairs[(near[flow], far[flow])].append(flow)
        return pairs

    def links(self) -> list[dict[str, Any]]:
        out = []
        for ttl in sorted(t for t in self.flows_at if t > 0):
            for (start, end), flows in sorted(self._pairs(ttl).items(), key=lambda i: str(i[0])):
                out.append({"ttl": ttl, "from": start, "to": end, "flow_ids": flows})
        return out

    def meshed_ttls(self) -> list[int]:
        """Hop pairs (by the near ttl) with a vertex of two or more answering successors
        and a vertex of the next hop with two or more answering predecessors."""
        out = []
        for ttl in sorted(t for t in self.flows_at if t > 0):
            successors: dict[str, set[str]] = defaultdict(set)
            predecessors: dict[str, set[str]] = defaultdict(set)
            for near, far in self._pairs(ttl):
                if near is not None and far is not None:
                    successors[near].add(far)
                    predecessors[far].add(near)
            if (any(len(s) > 1 for s in successors.values())
                    and any(len(p) > 1 for p in predecessors.values())):
                out.append(ttl)
        return out

    def correlated_nodes(self) -> list[dict[str, Any]]:
        """Vertices whose next hop depends on the hop before: the flows of one predecessor
        met the stopping rule yet reached only part of the vertex's successors."""
        confidence = per_test_confidence(self.confidence, self.tests())
        out = []
        for ttl in sorted(t for t in self.flows_at if t > 0):
            following = self.flows_at.get(ttl + 1, {})
            for vertex, flows in self._vertices(ttl).items():
                strata = self._strata(ttl, flows)
                reached: dict[Address, set[str]] = {
                    p: {a for f in members if (a := following.get(f)) is not None}
                    for p, members in strata.items()}
                union: set[str] = set().union(*reached.values())
                if len(strata) < 2 or len(union) < 2:
                    continue
                if any(reached[p] < union and sum(1 for f in members if f in following)
                       >= stopping_point(len(reached[p]), confidence)
                       for p, members in strata.items()):
                    out.append({"ttl": ttl, "address": vertex, "by_predecessor": [
                        {"predecessor": p, "successors": sorted(reached[p])}
                        for p in sorted(strata, key=str)]})
        return out


def run_mda(task: ProbeTask, context: RunContext) -> list[dict[str, Any]]:
    """A :data:`probes.runners.RUNNERS` entry: one ``mda`` result."""
    options = task_options(task, context.settings)
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    address, name, af = target_of(task, context)
    started = now()
    with prober_for(options, context, address, af) as prober:
        run = MdaRun(prober, address, options.confidence, seed=seed,
                     max_flows=options.max_flows, max_hops=options.max_hops,
                     gap_limit=options.gap_limit)
        run.run()
        source = prober.source_address()
    result = context.result_head(
        "mda",
        af=af,
        destination_address=address,
        destination_name=name,
        source_address=source,
        protocol="udp",
        msm_id=task.msm_id,
        started=started,
    )
    flows_used = {f for ttl, hop in run.flows_at.items() if ttl > 0 for f in hop}
    tests = run.tests()
    result.update(
        {
            "endtime": int(now()),
            "paris_id": task.paris_id,
            "confidence": options.confidence,
            "flow_seed": seed,
            "tests": tests,
            "test_confidence": round(per_test_confidence(options.confidence, tests), 6),
            "passes": run.passes,
            "probes_sent": prober.probes_sent,
            "flows_used": len(flows_used),
            "source_port_base": prober.source_port_base,
            "destination_port": prober.destination_port,
            "complete": run.complete,
            "stop_reason": run.stop_reason,
            "reached": any(ttl_flow[0] > 0 for ttl_flow in run.terminal)
            and any(a == address for hop in run.flows_at.values() for a in hop.values()),
            "nodes": run.nodes(),
            "links": run.links(),
            "meshed_ttls": run.meshed_ttls(),
            "correlated_nodes": run.correlated_nodes(),
        }
    )
    return [result]
