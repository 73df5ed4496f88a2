"""What a path picture shows: the path graph condensed until a person can read it.

Pure: a path graph (:func:`consumers.graph.build.build_graph`) in, a smaller
:class:`Picture` out; :mod:`consumers.graph.draw` lays it out with Graphviz. A CDN
destination seen from 29 probes has ~1,300 nodes; the picture keeps the story:

1. **Access hops fold into the vantage point.** From each vantage point, the leading
   hops that are private (RFC 1918, CGN, link-local) or silent and lead on to a public
   address are that probe's own access network; the vantage node says how many it hid.
   The walk follows only the edges that vantage point used (edges count traces per
   vantage point), so a private address shared by many home networks (192.168.1.1) is
   folded per probe and never joins their paths.
2. **Runs of silent hops become one node** ("3 silent hops"): the placeholders
   ``*<hop>@<address>`` that follow each other.
3. **Many destination addresses** (a CDN answers with dozens) are grouped by operator
   and physical country ("12 destination addresses").
4. **Chains compress**: consecutive interfaces with one way in and one way out, of one
   operator in one physical country, become one node ("4 hops 1.2.3.4 ... 5.6.7.8").
   Load-balancer points and US hops of a different kind never merge with others.
5. **A cap** keeps at most ``max_nodes``: the picture grows from the vantage points along
   the most-used links first (traces per link); a node whose next hops were left out says
   so ("+3 next hops, 7 traces, not drawn") and :attr:`Picture.notes` says how much in all.

Load balancers are marked from the ``load_balancer`` findings of
:mod:`consumers.graph.load_balancer` (one derivation: the picture draws the detector's
conclusion, it does not re-detect).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from consumers.enrich.geo import is_public
from consumers.enrich.vantage import Vantage
from consumers.graph.build import is_placeholder
from schemas.errors import RenderError
from schemas.findings import Finding


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a picture may hold (and how large a graph it accepts at all)."""

    max_nodes: int = 60  # drawn nodes, vantage points included
    max_vantages: int = 12  # the rest are counted in the notes
    max_destinations: int = 6  # more destination addresses are grouped
    max_input_nodes: int = 50_000  # a larger graph is refused (narrow the window)
    compress_chains: bool = True


@dataclass(slots=True)
class Picture:
    """The condensed graph and what was left out. ``view`` nodes carry ``kind``
    (vantage, interface, destination, destinations, silent, chain), ``members`` (the path
    graph's nodes inside), countries, operator, flags; edges carry ``count`` (traces)."""

    view: nx.DiGraph
    input_nodes: int
    input_edges: int
    hidden_nodes: int = 0  # condensed nodes left out by the cap
    hidden_vantages: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def max_count(self) -> int:
        return max((d["count"] for _a, _b, d in self.view.edges(data=True)), default=1)


def country_code(value: object) -> str:
    """An ISO country code, or '' (unknown) for anything else ('--', 'EU', None)."""
    text = str(value or "")
    return text if len(text) == 2 and text.isalpha() and text.isupper() and text != "EU" \
        else ""


def legal_us(data: Mapping[str, Any]) -> bool:
    """US law applies to the operator (its parent is in the US: the CLOUD Act)."""
    return bool(data.get("cloud_act")) or data.get("legal_country") == "US"


def operator_key(data: Mapping[str, Any]) -> tuple[str, str, str]:
    """(operator, parent, legal country); all '' when the operator is not known."""
    operator = str(data.get("legal_operator") or "")
    if not operator or operator == "unknown operator":
        return ("", "", "")
    return (operator, str(data.get("legal_parent") or ""), str(data.get("legal_country") or ""))


def _silent_runs(graph: nx.DiGraph) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """Placeholder -> the id of its run (placeholders that follow each other), and per run
    its shortest and longest number of silent hops between answering neighbours."""
    silent = [n for n in graph if is_placeholder(n)]
    out: dict[str, str] = {}
    spans: dict[str, tuple[int, int]] = {}
    for component in nx.weakly_connected_components(graph.subgraph(silent)):
        run = graph.subgraph(component)
        longest = (nx.dag_longest_path_length(run) + 1 if nx.is_directed_acyclic_graph(run)
                   else len(component))
        entries = [n for n in component
                   if any(not is_placeholder(p) for p in graph.predecessors(n))]
        exits = {n for n in component
                 if any(not is_placeholder(s) for s in graph.successors(n))}
        lengths = nx.multi_source_dijkstra_path_length(run, entries) if entries else {}
        shortest = min((lengths[n] + 1 for n in exits if n in lengths), default=longest)
        first = min(component, key=lambda n: (min(graph.nodes[n]["hops"]), n))
        hop, previous = first[1:].split("@", 1)
        run_id = f"silent hops after {previous} (hop {hop})"
        out.update((node, run_id) for node in component)
        spans[run_id] = (min(shortest, longest), longest)
    return out, spans


def _destination_groups(graph: nx.DiGraph, limit: int) -> dict[str, str]:
    destinations = [n for n, d in graph.nodes(data=True) if d.get("kind") == "destination"]
    if len(destinations) <= limit:
        return {}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in destinations:
        data = graph.nodes[node]
        groups[(str(data.get("physical_country") or ""),
                operator_key(data)[0])].append(node)
    out: dict[str, str] = {}
    for (country, operator), members in groups.items():
        if len(members) == 1:
            continue
        name = (f"{len(members)} destination addresses of {operator or 'unknown operator'}"
                f" in {country or 'unknown country'}")
        out.update((m, name) for m in members)
    return out


def _ancestors_or_self(graph: nx.DiGraph, nodes: Iterable[str]) -> set[str]:
    """Every node from which one of ``nodes`` can be reached (one reverse walk)."""
    found = set(nodes)
    stack = list(found)
    while stack:
        for before in graph.predecessors(stack.pop()):
            if before not in found:
                found.add(before)
                stack.append(before)
    return found


def _access(graph: nx.DiGraph, vantage: str, leads_public: set[str]) -> set[str]:
    """The leading private/silent hops of one vantage point (see the module docstring)."""
    found: set[str] = set()
    stack = [vantage]
    while stack:
        node = stack.pop()
        for successor in graph.successors(node):
            if successor in found or successor not in leads_public:
                continue
            data = graph.edges[node, successor]
            if vantage not in (data.get("vantage_counts") or data.get("vantages") or ()):
                continue
            if graph.nodes[successor].get("kind") in ("destination", "vantage"):
                continue
            if is_placeholder(successor) or not is_public(successor):
                found.add(successor)
                stack.append(successor)
    return found


def _merge_attributes(graph: nx.DiGraph, members: Sequence[str]) -> dict[str, Any]:
    datas = [graph.nodes[m] for m in members]
    first = datas[0]
    rtts = [d["rtt_min_ms"] for d in datas if d.get("rtt_min_ms") is not None]
    countries = {country_code(d.get("physical_country")) for d in datas}
    return {
        "members": sorted(members),
        "hops": sorted({h for d in datas for h in d.get("hops") or ()}),
        "physical_country": countries.pop() if len(countries) == 1 else "",
        "legal_operator": first.get("legal_operator", ""),
        "legal_parent": first.get("legal_parent", ""),
        "legal_country": first.get("legal_country", ""),
        "cloud_act": any(d.get("cloud_act") for d in datas),
        "is_us": any(d.get("is_us") for d in datas),
        "rtt_min_ms": min(rtts) if rtts else None,
    }


def _base_view(graph: nx.DiGraph, limits: Limits,
               vantages: Mapping[str, Vantage]) -> tuple[nx.DiGraph, dict[str, str]]:
    """Fold access hops, silent runs and destination groups; edges re-counted."""
    runs, spans = _silent_runs(graph)
    groups = _destination_groups(graph, limits.max_destinations)
    base = {n: runs.get(n) or groups.get(n) or n for n in graph}
    public = [n for n, d in graph.nodes(data=True)
              if not is_placeholder(n) and d.get("kind") != "vantage" and is_public(n)]
    leads_public = _ancestors_or_self(graph, public)
    vantage_nodes = sorted(n for n, d in graph.nodes(data=True) if d.get("kind") == "vantage")
    access = {v: _access(graph, v, leads_public) for v in vantage_nodes}

    view = nx.DiGraph()
    for a, b, data in graph.edges(data=True):
        per_vantage = data.get("vantage_counts") or {
            v: data.get("count", 0) for v in sorted(data.get("vantages") or ())[:1]}
        for vantage, count in per_vantage.items():
            folded = access.get(vantage, set())
            # a folded hop is the vantage point only when entered from the access side:
            # a path coming back into private space later keeps that hop as it is
            from_access = a == vantage or a in folded
            va = vantage if a in folded else base[a]
            vb = vantage if from_access and b in folded else base[b]
            if va == vb:
                continue
            if not view.has_edge(va, vb):
                view.add_edge(va, vb, count=0, vantage_counts={}, load_balanced=False)
            edge = view.edges[va, vb]
            edge["count"] += count
            edge["vantage_counts"][vantage] = edge["vantage_counts"].get(vantage, 0) + count
    for vantage in vantage_nodes:
        view.add_node(vantage)
    members: dict[str, list[str]] = defaultdict(list)
    for node, target in base.items():
        if target in view and graph.nodes[node].get("kind") != "vantage":
            members[target].append(node)
    for node in list(view):
        if node in access:
            where = vantages.get(node)
            hidden = access[node]
            view.nodes[node].update(
                kind="vantage", members=[node],
                physical_country=country_code(where.country if where else ""),
                access_hops=max((min(graph.nodes[n]["hops"]) for n in hidden), default=0),
                is_us=False, cloud_act=False, legal_country="", legal_operator="")
            continue
        inside = members[node]
        data = _merge_attributes(graph, inside)
        kind = str(graph.nodes[inside[0]].get("kind"))
        if node in spans:
            kind = "silent"
            data.update(silent_min=spans[node][0], silent_max=spans[node][1])
        elif len(inside) > 1:
            kind = "destinations"
        view.nodes[node].update(kind=kind, **data)
    return view, base


def _mark_balancers(view: nx.DiGraph, base: Mapping[str, str],
                    findings: Iterable[Finding]) -> None:
    for finding in findings:
        if finding.kind != "load_balancer":
            continue
        evidence = finding.evidence
        divergence = base.get(str(evidence.get("divergence", "")))
        convergence = base.get(str(evidence.get("convergence", "")))
        if divergence in view:
            data = view.nodes[divergence]
            nexts = {b[1] for b in evidence.get("branches") or () if len(b) > 1}
            data["divergence"] = max(int(data.get("divergence") or 0), len(nexts))
            data["balancer_mode"] = str(evidence.get("mode", ""))
        if convergence in view:
            view.nodes[convergence]["convergence"] = True
        for branch in evidence.get("branches") or ():
            steps = [base.get(str(hop)) for hop in branch]
            for a, b in zip(steps, steps[1:], strict=False):
                if a is not None and b is not None and view.has_edge(a, b):
                    view.edges[a, b]["load_balanced"] = True


def _mergeable(view: nx.DiGraph, a: str, b: str) -> bool:
    da, db = view.nodes[a], view.nodes[b]
    plain = ("interface", "chain")
    return (da.get("kind") in plain and db.get("kind") in plain
            and view.out_degree(a) == 1 and view.in_degree(b) == 1
            and not (da.get("divergence") or da.get("convergence")
                     or db.get("divergence") or db.get("convergence"))
            and da.get("physical_country") == db.get("physical_country")
            and operator_key(da) == operator_key(db)
            and bool(da.get("is_us")) == bool(db.get("is_us")))


def _compress_chains(view: nx.DiGraph) -> nx.DiGraph:
    nexts = {a: b for a, b in view.edges if _mergeable(view, a, b)}
    rename: dict[str, str] = {}
    out = nx.DiGraph()
    for start in sorted(set(nexts) - set(nexts.values())):
        chain = [start]
        while chain[-1] in nexts and len(chain) <= len(nexts):
            chain.append(nexts[chain[-1]])
        members = [m for node in chain for m in view.nodes[node]["members"]]
        name = f"{len(members)} hops {members[0]} ... {members[-1]}"
        rtts = [view.nodes[n]["rtt_min_ms"] for n in chain
                if view.nodes[n].get("rtt_min_ms") is not None]
        out.add_node(name, **{**view.nodes[chain[0]], "kind": "chain", "members": members,
                              "hops": sorted({h for n in chain for h in view.nodes[n]["hops"]}),
                              "rtt_min_ms": min(rtts) if rtts else None})
        rename.update((node, name) for node in chain)
    for node, data in view.nodes(data=True):
        if node not in rename:
            out.add_node(node, **data)
    for a, b, data in view.edges(data=True):
        ra, rb = rename.get(a, a), rename.get(b, b)
        if ra != rb:
            out.add_edge(ra, rb, **data)
    return out


def _walk(view: nx.DiGraph, start: str, kept: set[str], vantage: str = "") -> list[str]:
    """From ``start`` along the most-used link (of ``vantage`` when given) until the path
    ends or joins what is kept already; the new nodes, ``start`` first."""
    path, on_path = [start], {start}
    while True:
        choices = [(data["vantage_counts"].get(vantage, 0) if vantage else data["count"], after)
                   for _, after, data in view.out_edges(path[-1], data=True)
                   if after not in on_path]
        choices = [(count, after) for count, after in choices if count > 0]
        if not choices:
            return path
        _count, after = max(choices, key=lambda c: (c[0], c[1]))
        if after in kept:
            return path
        path.append(after)
        on_path.add(after)


def _cap(picture: Picture, limits: Limits) -> None:
    """Whole paths, most-used first: each vantage point's most-used path to its end, then
    the most-used branch off what is drawn, while the budget lasts."""
    view = picture.view
    for node in view:
        edges = view.out_edges(node, data=True) if view.nodes[node]["kind"] == "vantage" \
            else view.in_edges(node, data=True)
        view.nodes[node]["traffic"] = sum(d["count"] for *_e, d in edges)
    vantages = sorted((n for n, d in view.nodes(data=True) if d["kind"] == "vantage"),
                      key=lambda n: (-view.nodes[n]["traffic"], n))
    kept: set[str] = set()
    for vantage in vantages[:limits.max_vantages]:
        path = _walk(view, vantage, kept, vantage)
        if kept and len(kept) + len(path) > limits.max_nodes:
            break
        kept.update(path)
    shown = {v for v in vantages if v in kept}
    picture.hidden_vantages = len(vantages) - len(shown)
    tried: set[str] = set()
    while len(kept) < limits.max_nodes:
        branches = sorted((-data["count"], after)
                          for before in kept
                          for _, after, data in view.out_edges(before, data=True)
                          if after not in kept and after not in tried
                          and view.nodes[after]["kind"] != "vantage")
        added = False
        for _count, after in branches:
            tried.add(after)
            path = _walk(view, after, kept)
            if len(kept) + len(path) <= limits.max_nodes:
                kept.update(path)
                added = True
                break
        if not added:
            break
    for node in kept:
        left_out = [(s, d["count"]) for _, s, d in view.out_edges(node, data=True)
                    if s not in kept]
        if left_out:
            view.nodes[node]["hidden_next"] = len(left_out)
            view.nodes[node]["hidden_traces"] = sum(c for _, c in left_out)
    hidden_vantage_nodes = len(vantages) - len(shown)
    picture.hidden_nodes = view.number_of_nodes() - len(kept) - hidden_vantage_nodes
    picture.view = view.subgraph(kept).copy()


def condense(
    graph: nx.DiGraph,
    *,
    findings: Iterable[Finding] = (),
    vantages: Mapping[str, Vantage] | None = None,
    limits: Limits | None = None,
) -> Picture:
    """The picture of ``graph`` (see the module docstring for each step).

    Raises :class:`~schemas.errors.RenderError` for a graph above
    ``limits.max_input_nodes`` (narrow the window or pick one destination)."""
    limits = limits or Limits()
    if graph.number_of_nodes() > limits.max_input_nodes:
        raise RenderError(
            f"the path graph has {graph.number_of_nodes():,} nodes, more than the "
            f"{limits.max_input_nodes:,} a picture is drawn from: narrow the window "
            "(--days) or pick one destination")
    view, base = _base_view(graph, limits, vantages or {})
    _mark_balancers(view, base, findings)
    if limits.compress_chains:
        view = _compress_chains(view)
    picture = Picture(view, graph.number_of_nodes(), graph.number_of_edges())
    _cap(picture, limits)
    return picture
