"""The path graph: traceroute and MDA results of a time window as one NetworkX DiGraph.

Pure: rows in (``traceroute_hops`` / ``mda_links`` / ``dns_answers`` shaped dicts, as
``schemas.normalize`` produces them and ClickHouse returns them), graph out. Reading a window
from storage is :func:`consumers.graph.window.read_window`.

Nodes are interfaces (the reply address), the vantage points the paths start from
(``atlas:<probe>`` / ``vp:<name>``), and one placeholder per silent position:
``*<hop>@<last answering address>``, shared by every flow that crossed the same silent hop
after the same interface (so a silent router does not split a path into branches).
Trailing timeouts after the last reply are dropped. Edges carry the number of traces that
used them (``count``; per vantage point in ``vantage_counts``), the flow ids (``paris_id``,
MDA flow ids), the vantage points, the far end's RTTs and the first/last time seen; nodes
carry hop positions, RTT statistics and, when hop verdicts are given, the physical and legal
country of the interface, its operator and parent, and whether the CLOUD Act applies.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from consumers.enrich.countries import BLOC_US, bloc
from consumers.enrich.vantage import Vantage, vantage_key
from schemas.normalize import epoch_seconds

TraceKey = tuple[str, int, int, int, str]  # source, measurement, probe, epoch, destination


def is_us_country(code: str) -> bool:
    """True for the US and its territories (PR, GU, VI, …: ``consumers.enrich.countries``)."""
    return bloc(code) == BLOC_US


epoch = epoch_seconds  # the one conversion of row timestamps (schemas/normalize.py)


@dataclass(slots=True)
class Trace:
    """One traceroute result (one flow: one ``paris_id``) with every reply per hop."""

    source: str
    measurement_id: int
    probe_id: int
    timestamp: int
    vantage_point: str
    destination_address: str
    destination_name: str
    probe_public_address: str
    paris_id: int | None
    hops: dict[int, list[tuple[str, float | None]]] = field(default_factory=dict)

    @property
    def key(self) -> TraceKey:
        return (self.source, self.measurement_id, self.probe_id, self.timestamp,
                self.destination_address)

    @property
    def vantage_key(self) -> str:
        return vantage_key(self.probe_id, self.vantage_point)

    def positions(self) -> list[tuple[int, list[str]]]:
        """(hop, answering addresses) in hop order, trailing silent hops dropped; an
        empty list is a silent hop. Stops at the destination's reply."""
        out: list[tuple[int, list[str]]] = []
        last_answered = -1
        for hop in sorted(self.hops):
            addresses = sorted({a for a, _ in self.hops[hop] if a})
            out.append((hop, addresses))
            if addresses:
                last_answered = len(out)
            if self.destination_address in addresses:
                break
        return out[:last_answered] if last_answered >= 0 else []

    def min_rtt(self, hop: int, address: str) -> float | None:
        rtts = [r for a, r in self.hops.get(hop, ()) if a == address and r is not None]
        return min(rtts) if rtts else None

    @property
    def reached(self) -> bool:
        return any(a == self.destination_address for replies in self.hops.values()
                   for a, _ in replies)


@dataclass(slots=True)
class MdaResult:
    """One MDA result: links between TTLs with the flow ids that revealed them."""

    source: str
    measurement_id: int
    probe_id: int
    timestamp: int
    vantage_point: str
    destination_address: str
    destination_name: str
    complete: bool
    confidence: float
    links: list[tuple[int, str, str, tuple[int, ...]]] = field(default_factory=list)

    @property
    def vantage_key(self) -> str:
        return vantage_key(self.probe_id, self.vantage_point)


@dataclass(frozen=True, slots=True)
class HopEvidence:
    """The jurisdiction of one reply (from ``hop_verdicts`` or ``consumers.enrich``)."""

    address: str
    hop: int
    rtt_ms: float | None
    vantage_key: str
    physical_country: str
    physical_confidence: str
    us_possible: bool | None
    bound_km: float | None
    us_distance_km: float | None
    legal_country: str
    legal_operator: str
    cloud_act: bool
    legal_parent: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class DnsSample:
    """One DNS response sent straight to ``server_address`` (RTT + the site it names)."""

    server_address: str
    vantage_key: str
    probe_id: int
    vantage_point: str
    probe_public_address: str
    response_time_ms: float | None
    site: str  # CHAOS id.server / hostname.bind text, else the NSID; '' when none


def traces_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Trace]:
    """Group ``traceroute_hops`` rows into traces (results without an address are skipped);
    rows per reply or one per result (``replies``)."""
    traces: dict[tuple[TraceKey, Any], Trace] = {}
    for row in rows:
        destination = str(row["destination_address"] or "")
        if not destination:
            continue
        stamp = epoch(row["timestamp"])
        key = (str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]), stamp,
               destination)
        paris = row.get("paris_id")
        trace = traces.get((key, paris))  # paris_id too: two flows in one second stay two
        if trace is None:
            trace = traces[(key, paris)] = Trace(
                key[0], key[1], key[2], stamp, str(row.get("vantage_point") or ""),
                destination, str(row.get("destination_name") or ""),
                str(row.get("probe_public_address") or ""),
                None if paris is None else int(paris),
            )
        replies = row.get("replies")
        if replies is not None:  # one row per result (``window.read_path_rows``)
            hops = trace.hops
            for hop, _index, address, is_timeout, rtt in replies:
                hops.setdefault(hop, []).append(("" if is_timeout else address, rtt))
            continue
        address = "" if row.get("is_timeout") else str(row.get("reply_address") or "")
        trace.hops.setdefault(int(row["hop"]), []).append((address, row.get("rtt_ms")))
    return list(traces.values())


def mda_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[MdaResult]:
    """Group ``mda_links`` rows into MDA results."""
    results: dict[TraceKey, MdaResult] = {}
    for row in rows:
        stamp = epoch(row["timestamp"])
        key = (str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]), stamp,
               str(row["destination_address"]))
        result = results.get(key)
        if result is None:
            result = results[key] = MdaResult(
                key[0], key[1], key[2], stamp, str(row.get("vantage_point") or ""), key[4],
                str(row.get("destination_name") or ""), bool(row.get("complete")),
                float(row.get("confidence") or 0.0),
            )
        result.links.append((int(row["ttl"]), str(row["near_address"] or ""),
                             str(row["far_address"] or ""),
                             tuple(int(f) for f in row["flow_ids"])))
    for result in results.values():
        result.links.sort()
    return list(results.values())


def dns_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[DnsSample]:
    """One sample per DNS response; the site is its CHAOS TXT answer, else its NSID."""
    samples: dict[tuple[Any, ...], DnsSample] = {}
    for row in rows:
        server = str(row.get("resolver_address") or "")
        if not server:
            continue
        key = (row["source"], row["measurement_id"], row["probe_id"], epoch(row["timestamp"]),
               row.get("response_index", 0))
        chaos = (str(row.get("query_class")) == "CH" and row.get("record_type") == "TXT"
                 and row.get("section") == "answer")
        site = str(row.get("record_data") or "").strip('"') if chaos else ""
        known = samples.get(key)
        if known is not None and (known.site or not site):
            continue
        samples[key] = DnsSample(
            server, vantage_key(int(row["probe_id"]), str(row.get("vantage_point") or "")),
            int(row["probe_id"]), str(row.get("vantage_point") or ""),
            str(row.get("probe_public_address") or ""), row.get("response_time_ms"),
            site or str(row.get("nsid") or ""),
        )
    return list(samples.values())


def placeholder(hop: int, previous: str) -> str:
    return f"*{hop}@{previous}"


def is_placeholder(node: str) -> bool:
    return node.startswith("*")


def _add_edge(graph: nx.DiGraph, a: str, b: str, *, flow: int | None, vantage: str,
              rtt: float | None, stamp: int, source: str, count: int = 1) -> None:
    data = graph.get_edge_data(a, b)
    if data is None:
        graph.add_edge(a, b, count=0, flows=set(), vantages=set(), vantage_counts={},
                       rtts=[], sources=set(), first_seen=stamp, last_seen=stamp)
        data = graph.edges[a, b]
    data["count"] += count
    data["vantage_counts"][vantage] = data["vantage_counts"].get(vantage, 0) + count
    if flow is not None:
        data["flows"].add(flow)
    data["vantages"].add(vantage)
    data["sources"].add(source)
    if rtt is not None:
        data["rtts"].append(rtt)
    data["first_seen"] = min(data["first_seen"], stamp)
    data["last_seen"] = max(data["last_seen"], stamp)


def _add_node(graph: nx.DiGraph, node: str, kind: str, hop: int, vantage: str,
              rtt: float | None) -> None:
    if node not in graph:
        graph.add_node(node, kind=kind, hops=set(), vantages=set(), rtts=[])
    data = graph.nodes[node]
    if kind == "destination":
        data["kind"] = kind
    data["hops"].add(hop)
    data["vantages"].add(vantage)
    if rtt is not None:
        data["rtts"].append(rtt)


def add_trace(graph: nx.DiGraph, trace: Trace) -> None:
    """Add one traceroute to ``graph`` (see the module docstring for the node scheme)."""
    vantage = trace.vantage_key
    _add_node(graph, vantage, "vantage", 0, vantage, None)
    previous = [vantage]
    last_answered = vantage
    source = "probe" if trace.vantage_point else "atlas"
    for hop, addresses in trace.positions():
        if addresses:
            current = addresses
        else:
            current = [placeholder(hop, last_answered)]
        for node in current:
            rtt = trace.min_rtt(hop, node) if addresses else None
            kind = ("destination" if node == trace.destination_address else
                    "interface" if addresses else "silent")
            _add_node(graph, node, kind, hop, vantage, rtt)
            for before in previous:
                _add_edge(graph, before, node, flow=trace.paris_id, vantage=vantage, rtt=rtt,
                          stamp=trace.timestamp, source=source)
        previous = current
        if addresses:
            last_answered = addresses[0]


def add_mda(graph: nx.DiGraph, result: MdaResult) -> None:
    """Add one MDA result. Links at the first TTL start at the vantage point; a silent
    TTL (MDA's ``null`` node) becomes the placeholder named after the interface before it."""
    vantage = result.vantage_key
    _add_node(graph, vantage, "vantage", 0, vantage, None)
    silent: dict[int, str] = {}

    def node_at(ttl: int, address: str, previous: str) -> str:
        if address:
            return address
        if is_placeholder(previous):
            previous = previous.split("@", 1)[1]
        return silent.setdefault(ttl, placeholder(ttl, previous))

    first_ttl = min((ttl for ttl, *_ in result.links), default=1)
    for ttl, near, far, flows in result.links:
        near_node = node_at(ttl, near, vantage)
        far_node = node_at(ttl + 1, far, near_node)
        for node, hop, address in ((near_node, ttl, near), (far_node, ttl + 1, far)):
            kind = ("destination" if address == result.destination_address else
                    "interface" if address else "silent")
            _add_node(graph, node, kind, hop, vantage, None)
        pairs = [(near_node, far_node)]
        if ttl == first_ttl:
            pairs.append((vantage, near_node))
        for a, b in pairs:
            for flow in flows:
                _add_edge(graph, a, b, flow=flow, vantage=vantage, rtt=None,
                          stamp=result.timestamp, source="mda", count=0)
            data = graph.edges[a, b]
            data["count"] += 1
            data["vantage_counts"][vantage] = data["vantage_counts"].get(vantage, 0) + 1


def annotate(graph: nx.DiGraph, evidence: Mapping[str, HopEvidence]) -> None:
    """Put RTT statistics and (when known) physical/legal country on every node."""
    for node, data in graph.nodes(data=True):
        rtts = data.get("rtts") or []
        data["rtt_min_ms"] = min(rtts) if rtts else None
        data["rtt_median_ms"] = statistics.median(rtts) if rtts else None
        found = evidence.get(node)
        data["physical_country"] = found.physical_country if found else ""
        data["physical_confidence"] = found.physical_confidence if found else ""
        data["legal_country"] = found.legal_country if found else ""
        data["legal_operator"] = found.legal_operator if found else ""
        data["legal_parent"] = found.legal_parent if found else ""
        data["cloud_act"] = bool(found and found.cloud_act)
        data["is_us"] = bool(found and is_us_country(found.physical_country))
    for _a, _b, data in graph.edges(data=True):
        rtts = data.get("rtts") or []
        data["rtt_min_ms"] = min(rtts) if rtts else None
        data["rtt_median_ms"] = statistics.median(rtts) if rtts else None


def build_graph(
    traces: Sequence[Trace],
    mdas: Sequence[MdaResult] = (),
    evidence: Mapping[str, HopEvidence] | None = None,
) -> nx.DiGraph:
    """One graph from traces and MDA results (usually all those of one destination)."""
    graph = nx.DiGraph()
    for trace in traces:
        add_trace(graph, trace)
    for result in mdas:
        add_mda(graph, result)
    annotate(graph, evidence or {})
    return graph


@dataclass(slots=True)
class Window:
    """Everything the detectors look at for one time window."""

    start: dt.datetime
    end: dt.datetime
    traces: list[Trace] = field(default_factory=list)
    mdas: list[MdaResult] = field(default_factory=list)
    dns: list[DnsSample] = field(default_factory=list)
    vantages: dict[str, Vantage] = field(default_factory=dict)
    evidence: dict[tuple[TraceKey, int, str], HopEvidence] = field(default_factory=dict)
    applications: dict[str, list[str]] = field(default_factory=dict)
    # destination address -> applications, from each vantage point's own DNS answers
    # (consumers.pipeline); adds to the hostname / literal-address match
    destination_applications: dict[str, set[str]] = field(default_factory=dict)

    def by_destination(self) -> dict[str, tuple[list[Trace], list[MdaResult]]]:
        out: dict[str, tuple[list[Trace], list[MdaResult]]] = {}
        for trace in self.traces:
            out.setdefault(trace.destination_address, ([], []))[0].append(trace)
        for result in self.mdas:
            out.setdefault(result.destination_address, ([], []))[1].append(result)
        return out

    def address_evidence(self) -> dict[str, HopEvidence]:
        """One verdict per address (a US verdict wins: it is the one to show)."""
        out: dict[str, HopEvidence] = {}
        for (_key, _hop, address), found in self.evidence.items():
            known = out.get(address)
            if known is None or (is_us_country(found.physical_country)
                                  and not is_us_country(known.physical_country)):
                out[address] = found
        return out

    def applications_of(self, destination: str, name: str) -> tuple[str, ...]:
        wanted = name.lower().rstrip(".")
        found = {app for app, hostnames in self.applications.items()
                 if any(h.lower().rstrip(".") in (wanted, destination) for h in hostnames)}
        return tuple(sorted(found | self.destination_applications.get(destination, set())))

    def graph(self, destination: str) -> nx.DiGraph:
        traces, mdas = self.by_destination().get(destination, ([], []))
        return build_graph(traces, mdas, self.address_evidence())
