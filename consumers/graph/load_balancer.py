"""Load balancers: diamonds in the paths from one vantage point to one destination.

A *diamond* is a divergence interface ``D`` with two or more answering successors whose
paths meet again at a convergence interface ``C`` (the nearest interface reachable from
every successor); every branch holds at least one interface between ``D`` and ``C``.
Silent hops (placeholders) never count as a branch: a timeout is the absence of evidence,
not another next hop. Width is the most interfaces at one distance from ``D``, length the
longest branch in hops.

Which branch each flow took tells the kind (Augustin et al.'s classes, and the remapping
question of path-change studies such as DTRACK):

* ``per_packet`` — one flow (one ``paris_id`` traceroute, one MDA flow id) reached two
  successors of ``D``;
* ``per_flow`` — different flow ids took different branches and each flow id kept its
  branch (MDA links, or RIPE Atlas traceroutes whose ``paris_id`` rotates); a flow id
  that later takes another branch while the old one is still used by other flows is
  *remapping* of the balancer's hash, still per flow;
* ``route_change`` (its own finding kind) — the branches follow time, not flows: before
  some moment every flow used one set of branches, after it every flow used another set
  and the old one was never used again.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from consumers.graph.build import MdaResult, Trace, Window, build_graph, is_placeholder
from schemas.findings import Finding, finding_id

MAX_BRANCH_HOPS = 12
MAX_BRANCHES = 64


@dataclass(slots=True)
class Diamond:
    divergence: str
    convergence: str
    branches: list[list[str]]
    width: int
    length: int

    @property
    def successors(self) -> list[str]:
        return sorted({branch[1] for branch in self.branches})


@dataclass(slots=True)
class Observation:
    flow: int | None
    timestamp: int
    label: frozenset[str]  # successors of D this flow reached
    source: str  # atlas | probe | mda


@dataclass(slots=True)
class Classified:
    diamond: Diamond
    mode: str  # per_flow | per_packet | route_change
    observations: list[Observation] = field(default_factory=list)
    remapped_flows: list[int] = field(default_factory=list)
    change_at: int | None = None
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


def find_diamonds(graph: nx.DiGraph) -> list[Diamond]:
    """Every diamond of a single-vantage graph (see the module docstring)."""
    diamonds = []
    for node in graph.nodes:
        if is_placeholder(node) or graph.nodes[node].get("kind") == "vantage":
            continue
        successors = [s for s in graph.successors(node) if s != node and not is_placeholder(s)]
        if len(successors) < 2:
            continue
        found = _diamond(graph, node, successors)
        if found is not None:
            diamonds.append(found)
    return diamonds


def _diamond(graph: nx.DiGraph, divergence: str, successors: list[str]) -> Diamond | None:
    reach = [nx.single_source_shortest_path_length(graph, s, cutoff=MAX_BRANCH_HOPS)
             for s in successors]
    common = set(reach[0]).intersection(*reach[1:]) - {divergence}
    common = {c for c in common if not is_placeholder(c)}
    if not common:
        return None
    convergence = min(common, key=lambda c: (max(r[c] for r in reach), sum(r[c] for r in reach),
                                             c))
    if convergence in successors:
        return None  # a "branch" without an interface: a TTL artefact, not a balancer
    inside = (nx.descendants(graph, divergence) & nx.ancestors(graph, convergence)) | {
        divergence, convergence}
    sub = graph.subgraph(inside)
    branches: list[list[str]] = []
    for path in nx.all_simple_paths(sub, divergence, convergence, cutoff=MAX_BRANCH_HOPS):
        if len(path) >= 3 and path[1] in successors:
            branches.append(list(path))
        if len(branches) >= MAX_BRANCHES:
            break
    if len({b[1] for b in branches}) < 2:
        return None
    branches.sort()
    by_distance: dict[int, set[str]] = defaultdict(set)
    for branch in branches:
        for distance, hop in enumerate(branch[1:-1], start=1):
            by_distance[distance].add(hop)
    width = max(len(nodes) for nodes in by_distance.values())
    length = max(len(branch) - 1 for branch in branches)
    return Diamond(divergence, convergence, branches, width, length)


def observations(diamond: Diamond, traces: Iterable[Trace],
                 mdas: Iterable[MdaResult]) -> list[Observation]:
    """Which successors of ``D`` each flow reached (flows that did not show D are left out)."""
    successors = set(diamond.successors)
    out = []
    for trace in traces:
        positions = trace.positions()
        for index, (_hop, addresses) in enumerate(positions[:-1]):
            if diamond.divergence in addresses:
                label = frozenset(positions[index + 1][1]) & successors
                if label:
                    out.append(Observation(trace.paris_id, trace.timestamp, label,
                                           "probe" if trace.vantage_point else "atlas"))
                break
    for result in mdas:
        per_flow: dict[int, set[str]] = defaultdict(set)
        for _ttl, near, far, flows in result.links:
            if near == diamond.divergence and far in successors:
                for flow in flows:
                    per_flow[flow].add(far)
        out.extend(Observation(flow, result.timestamp, frozenset(label), "mda")
                   for flow, label in per_flow.items())
    return sorted(out, key=lambda o: (o.timestamp, -1 if o.flow is None else o.flow))


PER_PACKET_SHARE = 0.5  # a per-packet balancer shows two branches in most 3-packet hops
STABLE_SHARE = 0.8  # a per-flow balancer keeps (almost) every flow on one branch


def classify(diamond: Diamond, seen: list[Observation]) -> Classified | None:
    """Tell a per-flow or per-packet balancer from a route change (None: no evidence)."""
    if not seen:
        return None
    mixed = [o for o in seen if len(o.label) > 1]
    if len(mixed) >= 2 and len(mixed) >= PER_PACKET_SHARE * len(seen):
        return Classified(diamond, "per_packet", seen)
    if len(seen) == 1 and mixed:
        # the only trace of this vantage point: one flow id reached two successors within
        # a second. Paris traceroute keeps the flow constant, so this is a per-packet
        # balancer or a route change during the trace; reported, with low confidence
        return Classified(diamond, "per_packet", seen)
    single = [o for o in seen if len(o.label) == 1]  # a lone mixed trace: a change mid-trace
    labels = [next(iter(o.label)) for o in single]
    if len(set(labels)) < 2:
        return None  # one branch only: no evidence of balancing
    change = _route_change(single, labels)
    if change is not None:
        at, before, after = change
        return Classified(diamond, "route_change", seen, change_at=at, before=before,
                          after=after)
    by_flow: dict[int | None, list[str]] = defaultdict(list)
    for observation, label in zip(single, labels, strict=True):
        by_flow[observation.flow].append(label)
    remapped = sorted(f for f, used in by_flow.items() if len(set(used)) > 1 and f is not None)
    return Classified(diamond, "per_flow", seen, remapped_flows=remapped)


def flow_stability(seen: list[Observation]) -> float:
    """Share of observations on their flow id's most used branch (1.0 = per-flow)."""
    by_flow: dict[int | None, list[frozenset[str]]] = defaultdict(list)
    for observation in seen:
        if len(observation.label) == 1:
            by_flow[observation.flow].append(observation.label)
    total = sum(len(v) for v in by_flow.values())
    top = sum(max(v.count(x) for x in set(v)) for v in by_flow.values())
    return top / total if total else 0.0


def _route_change(single: list[Observation], labels: list[str]) -> tuple[int, list[str],
                                                                         list[str]] | None:
    """Branches that follow time, not flows: the time-ordered snapshots (one timestamp =
    one snapshot, which must show one branch only) form few runs of at least two snapshots
    each, neighbouring runs use disjoint branches, and some flow id is seen on both sides
    of a change with different branches (the same flow moved: not a per-flow balancer)."""
    snapshots: dict[int, set[str]] = defaultdict(set)
    flows_at: dict[int, set[int | None]] = defaultdict(set)
    for observation, label in zip(single, labels, strict=True):
        snapshots[observation.timestamp].add(label)
        flows_at[observation.timestamp].add(observation.flow)
    if any(len(used) > 1 for used in snapshots.values()):
        return None  # two branches in use at the same moment
    order = sorted(snapshots)
    runs: list[list[int]] = []
    for stamp in order:
        if runs and snapshots[runs[-1][-1]] == snapshots[stamp]:
            runs[-1].append(stamp)
        else:
            runs.append([stamp])
    if len(runs) < 2 or len(runs) > max(3, len(order) // 10):
        return None
    if any(len(run) < 2 for run in runs):
        return None
    for left, right in zip(runs, runs[1:], strict=False):
        before = {f for t in left for f in flows_at[t]}
        after = {f for t in right for f in flows_at[t]}
        if not (before & after) - {None}:
            return None  # no flow seen on both sides: could be flows hashed differently
    first, second = runs[0], runs[1]
    return (second[0], sorted(set().union(*(snapshots[t] for t in first))),
            sorted(set().union(*(snapshots[t] for t in second))))


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def detect_for_vantage(traces: list[Trace], mdas: list[MdaResult]) -> list[Classified]:
    """Diamonds and their classes for the traces/MDA results of ONE vantage point and ONE
    destination."""
    graph = build_graph(traces, mdas)
    out = []
    for diamond in find_diamonds(graph):
        classified = classify(diamond, observations(diamond, traces, mdas))
        if classified is not None:
            out.append(classified)
    return out


def detect(window: Window) -> list[Finding]:
    """The registered detector: load balancers and route changes of a window."""
    groups: dict[tuple[str, str], tuple[list[Trace], list[MdaResult]]] = defaultdict(
        lambda: ([], []))
    for trace in window.traces:
        groups[(trace.destination_address, trace.vantage_key)][0].append(trace)
    for result in window.mdas:
        groups[(result.destination_address, result.vantage_key)][1].append(result)
    merged: dict[tuple[str, str, str, str], list[tuple[str, Classified]]] = defaultdict(list)
    names: dict[str, str] = {}
    for (destination, vantage), (traces, mdas) in sorted(groups.items()):
        for item in traces[:1] or mdas[:1]:
            names[destination] = item.destination_name
        for classified in detect_for_vantage(traces, mdas):
            kind = "route_change" if classified.mode == "route_change" else "load_balancer"
            key = (kind, destination, classified.diamond.divergence,
                   classified.diamond.convergence)
            merged[key].append((vantage, classified))
    countries = window.address_evidence()
    findings = []
    for (kind, destination, divergence, convergence), items in sorted(merged.items()):
        findings.append(_finding(window, kind, destination, names.get(destination, ""),
                                 divergence, convergence, items, countries))
    return findings


def _finding(window: Window, kind: str, destination: str, name: str, divergence: str,
             convergence: str, items: list[tuple[str, Classified]],
             countries: dict[str, Any]) -> Finding:
    vantages = tuple(sorted({v for v, _ in items}))
    branches = sorted({tuple(b) for _, c in items for b in c.diamond.branches})
    modes = sorted({c.mode for _, c in items})
    mode = "per_packet" if "per_packet" in modes else modes[0]
    sources = sorted({o.source for _, c in items for o in c.observations})
    flows: dict[str, set[int]] = defaultdict(set)
    for _, classified in items:
        for observation in classified.observations:
            for successor in observation.label:
                if observation.flow is not None:
                    flows[successor].add(observation.flow)
    us_branches = [list(b) for b in branches
                   if any(getattr(countries.get(h), "physical_country", "") == "US"
                          for h in b[1:-1])]
    width = max(c.diamond.width for _, c in items)
    length = max(c.diamond.length for _, c in items)
    evidence: dict[str, Any] = {
        "mode": mode, "divergence": divergence, "convergence": convergence,
        "width": width, "length": length, "branches": [list(b) for b in branches],
        "flows_per_successor": {s: sorted(f) for s, f in sorted(flows.items())},
        "observations": sum(len(c.observations) for _, c in items), "sources": sources,
        "us_branches": us_branches,
        "remapped_flows": sorted({f for _, c in items for f in c.remapped_flows}),
        "branch_countries": {h: getattr(countries.get(h), "physical_country", "")
                             for b in branches for h in b[1:-1]},
    }
    if kind == "route_change":
        changes = [c for _, c in items if c.change_at is not None]
        first = min(changes, key=lambda c: c.change_at or 0)
        evidence.update(changed_at=_iso(first.change_at or 0), before=first.before,
                        after=first.after)
        summary = (f"route change towards {destination} at {evidence['changed_at']}: the path "
                   f"after {divergence} moved from {', '.join(first.before)} to "
                   f"{', '.join(first.after)} for every flow (not load balancing)")
        confidence = "high" if len(first.observations) >= 4 else "medium"
    else:
        stability = min(flow_stability(c.observations) for _, c in items)
        evidence["flow_stability"] = round(stability, 3)
        many = all(len(f) >= 2 for f in flows.values()) or "mda" in sources
        confidence = "high" if many or mode == "per_packet" else "medium"
        if mode == "per_packet" and evidence["observations"] < 2:
            confidence = "low"
            evidence["note"] = ("one trace only: one flow id reached several next hops "
                                "(per-packet balancing, or a route change during the trace)")
        if mode == "per_flow" and stability < STABLE_SHARE:
            confidence = "low"
            evidence["note"] = ("flow ids do not keep their branch: a NAT rewriting ports, "
                                "per-destination balancing, or repeated path changes")
        summary = (f"{mode.replace('_', '-')} load balancer at {divergence} towards "
                   f"{destination}: {len({b[1] for b in branches})} branches (width {width}, "
                   f"length {length}) meeting again at {convergence}"
                   + ("; a branch crosses the US" if us_branches else ""))
    return Finding(
        finding_id=finding_id(kind, destination, divergence, convergence, window.start,
                              window.end),
        kind=kind,
        destination_address=destination, subject=f"{divergence}->{convergence}",
        destination_name=name, applications=window.applications_of(destination, name),
        vantage_keys=vantages, window_start=window.start, window_end=window.end,
        confidence=confidence, summary=summary, evidence=evidence,
    )
