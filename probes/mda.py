"""MDA — the Multipath Detection Algorithm (Augustin, Friedman, Teixeira, 2007/2009) over the
rootless UDP prober, producing a ``type: "mda"`` result (``schemas/jsonschema/mda.schema.json``).

For every node found at hop ``t`` MDA sends probes to hop ``t + 1`` on flows known to pass
through that node, until the *stopping rule* says that, had there been one more successor
than the ``k`` seen so far, it would have been seen with the stated confidence. With ``K``
equally likely successors, ``n`` probes miss one of them with probability at most
``K * ((K - 1) / K) ** n`` (union bound), so the rule is: after seeing ``k`` successors, stop
at ``n_k`` probes, the least ``n`` with ``(k + 1) * (k / (k + 1)) ** n <= 1 - confidence``.
For 95 % that gives 6, 11, 16, 21, 27, ... (Augustin et al.'s table), for 99 % 9, 14, 21, ...

When a node has too few known flows, MDA picks fresh flow ids and probes them at hop
``t`` until enough of them pass through it (*node control*). A hop with no answer is the
node ``null``; its flows are still followed. A flow stops at the destination or at an ICMP
unreachable error.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from probes.context import RunContext, now
from probes.flows import Probe, UdpFlowProber, prober_for, target_of
from schemas.tasks import ProbeTask

SOURCE = "<source>"
MAX_NODE_CONTROL_ROUNDS = 12


@cache
def stopping_point(successors_seen: int, confidence: float) -> int:
    """``n_k``: probes needed through a node with ``k`` successors seen so far."""
    k = max(successors_seen, 1)
    alpha = 1.0 - confidence
    return math.ceil(math.log(alpha / (k + 1)) / math.log(k / (k + 1)))


@dataclass
class MdaRun:
    prober: UdpFlowProber
    destination: str
    confidence: float
    first_flow: int = 0
    max_flows: int = 256
    max_hops: int = 32
    gap_limit: int = 3
    flows_at: dict[int, dict[int, str | None]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    terminal: set[tuple[int, int]] = field(default_factory=set)  # (ttl, flow) that ended
    source_flows: list[int] = field(default_factory=list)
    next_flow: int = 0
    complete: bool = True
    stop_reason: str = "max_hops"

    def __post_init__(self) -> None:
        self.next_flow = self.first_flow

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
        budget = self.first_flow + self.max_flows - self.next_flow
        count = max(0, min(count, budget))
        flows = list(range(self.next_flow, self.next_flow + count))
        self.next_flow += count
        return flows

    def _groups(self, ttl: int) -> dict[str | None, list[int]]:
        if ttl == 0:
            return {SOURCE: list(self.source_flows)}
        groups: dict[str | None, list[int]] = defaultdict(list)
        for flow, address in self.flows_at[ttl].items():
            if (ttl, flow) not in self.terminal:
                groups[address].append(flow)
        return groups

    def _explore(self, ttl: int) -> None:
        """Probe hop ``ttl + 1`` until every node at ``ttl`` meets the stopping rule."""
        control_rounds = 0
        while True:
            batch: list[int] = []
            deficits: dict[str | None, int] = {}
            groups = self._groups(ttl)
            for node, flows in groups.items():
                following = self.flows_at[ttl + 1]
                probed = [f for f in flows if f in following]
                seen = len({following[f] for f in probed})
                need = stopping_point(seen, self.confidence) - len(probed)
                if need <= 0:
                    continue
                unprobed = [f for f in flows if f not in following]
                batch += unprobed[:need]
                if len(unprobed) < need:
                    deficits[node] = need - len(unprobed)
            if batch:
                self._send((flow, ttl + 1) for flow in batch)
                continue
            if not deficits:
                return
            control_rounds += 1
            if control_rounds > MAX_NODE_CONTROL_ROUNDS:
                self.complete = False
                return
            total = sum(len(f) for f in groups.values())
            wanted = 0
            for node, deficit in deficits.items():
                share = len(groups[node]) / total if total else 1.0
                wanted = max(wanted, math.ceil(deficit / share))
            fresh = self._fresh(min(wanted, 64))
            if not fresh:
                self.complete = False
                return
            if ttl == 0:
                self.source_flows += fresh
            else:
                self._send((flow, ttl) for flow in fresh)

    def run(self) -> None:
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

    def nodes(self) -> list[dict[str, Any]]:
        out = []
        for ttl in sorted(self.flows_at):
            groups: dict[str | None, list[int]] = defaultdict(list)
            for flow, address in self.flows_at[ttl].items():
                groups[address].append(flow)
            for address, flows in sorted(groups.items(), key=lambda i: str(i[0])):
                out.append({"ttl": ttl, "address": address, "flow_ids": sorted(flows)})
        return out

    def links(self) -> list[dict[str, Any]]:
        out = []
        for ttl in sorted(self.flows_at):
            near, far = self.flows_at[ttl], self.flows_at.get(ttl + 1, {})
            pairs: dict[tuple[str | None, str | None], list[int]] = defaultdict(list)
            for flow in near.keys() & far.keys():
                if (ttl, flow) not in self.terminal:
                    pairs[(near[flow], far[flow])].append(flow)
            for (start, end), flows in sorted(pairs.items(), key=lambda i: str(i[0])):
                out.append({"ttl": ttl, "from": start, "to": end, "flow_ids": sorted(flows)})
        return out


def run_mda(task: ProbeTask, context: RunContext) -> list[dict[str, Any]]:
    """A :data:`probes.runners.RUNNERS` entry: one ``mda`` result."""
    settings = context.settings
    options = task.options
    confidence = float(options.get("confidence", settings.mda_confidence))
    address, name, af = target_of(task, context)
    started = now()
    with prober_for(task, context, address, af) as prober:
        run = MdaRun(
            prober,
            address,
            confidence,
            first_flow=task.paris_id,
            max_flows=int(options.get("max_flows", settings.mda_max_flows)),
            max_hops=int(options.get("max_hops", settings.max_hops)),
            gap_limit=int(options.get("gap_limit", settings.gap_limit)),
        )
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
    flows_used = sorted({f for hop in run.flows_at.values() for f in hop})
    result.update(
        {
            "endtime": int(now()),
            "paris_id": task.paris_id,
            "confidence": confidence,
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
        }
    )
    return [result]
