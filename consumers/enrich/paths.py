"""Forward paths and their verdicts, pure: rows in, hop and path verdicts out.

:func:`paths_from_rows` groups ``traceroute_hops``-shaped dicts (as ``schemas.normalize``
produces and ClickHouse returns) into forward paths; :func:`verdicts_for_paths` gives every
path of a window its hop and path verdicts, with every proof the window holds: the regions
of its addresses across vantage points and pings (``constraints.Regions``), physics-only
location, and the end-to-end constraint (:func:`end_to_end_refutations`). Storage is in
``window.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.enrich.constraints import (
    Observation,
    Refutation,
    Regions,
    clean_hops,
    end_to_end_refutation,
    first_divergence,
    traceroute_observations,
)
from consumers.enrich.geo import is_public
from consumers.enrich.hops import Enricher, HopRecord, HopVerdict
from consumers.enrich.vantage import Vantage, VantageRegistry
from consumers.verdicts import PathVerdict, classify_path
from schemas.normalize import epoch_seconds


@dataclass(slots=True)
class TracedPath:
    """One traceroute result: who measured, to where, and the minimum RTT per reply address."""

    source: str
    measurement_id: int
    probe_id: int
    timestamp: int  # seconds since the epoch
    vantage_point: str
    destination_address: str
    destination_name: str
    probe_public_address: str
    hops: dict[tuple[int, str], float | None] = field(default_factory=dict)
    slowest: dict[tuple[int, str], float] = field(default_factory=dict)  # largest RTT
    timeouts: dict[int, int] = field(default_factory=dict)  # unanswered probes per hop

    def add(self, hop: int, address: str, rtt_ms: float | None,
            slowest_ms: float | None = None) -> None:
        if not address:
            return
        key = (hop, address)
        known = self.hops.get(key)
        if key not in self.hops or (rtt_ms is not None and (known is None or rtt_ms < known)):
            self.hops[key] = rtt_ms
        largest = slowest_ms if slowest_ms is not None else rtt_ms
        if largest is not None and largest > self.slowest.get(key, -1.0):
            self.slowest[key] = largest


_epoch = epoch_seconds  # rows from SQL (seconds), ClickHouse (datetime) or normalize (ms)


def paths_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[TracedPath]:
    """Group traceroute_hops rows into forward paths (min RTT per hop and address)."""
    paths: dict[tuple[Any, ...], TracedPath] = {}
    for row in rows:
        if not row["destination_address"]:
            continue  # name resolution failed: no path was measured
        key = (row["source"], row["measurement_id"], row["probe_id"], _epoch(row["timestamp"]),
               row["destination_address"])
        path = paths.get(key)
        if path is None:
            path = paths[key] = TracedPath(
                str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]),
                _epoch(row["timestamp"]), str(row.get("vantage_point") or ""),
                str(row["destination_address"]), str(row.get("destination_name") or ""),
                str(row.get("probe_public_address") or ""),
            )
        hop = int(row["hop"])
        lost = int(row.get("timeouts") or 0) + bool(row.get("is_timeout"))
        if lost:
            path.timeouts[hop] = path.timeouts.get(hop, 0) + lost
        if not row.get("is_timeout"):
            path.add(hop, str(row.get("reply_address") or ""), row.get("rtt_ms"),
                     row.get("rtt_max_ms"))
    return list(paths.values())


@dataclass(slots=True)
class PathResult:
    path: TracedPath
    vantage: Vantage | None
    hops: list[HopVerdict]
    verdict: PathVerdict
    regions: Regions | None = None  # the window's regions the verdicts used


def path_observations(path: TracedPath, vantage: Vantage | None) -> list[Observation]:
    """The RTT observations one traceroute contributes to its window's regions."""
    return traceroute_observations(vantage, path.hops,
                                   f"traceroute {path.measurement_id}/{path.probe_id}")


def ping_observations(rows: Iterable[Mapping[str, Any]],
                      registry: VantageRegistry) -> list[Observation]:
    """``ping_results``-shaped rows (probe_id, vantage_point, source_address,
    destination_address, rtt_min_ms or smallest_rtt_ms, measurement_id) -> observations of
    the destinations."""
    out = []
    for row in rows:
        rtt = row.get("smallest_rtt_ms", row.get("rtt_min_ms"))
        address = str(row.get("destination_address") or "")
        if rtt is None or not address or not is_public(address):
            continue
        source = str(row.get("source_address") or "")
        vantage = registry.resolve(int(row["probe_id"]), str(row.get("vantage_point") or ""),
                                   source if is_public(source) else "")
        if vantage is not None:
            out.append(Observation(address, vantage, float(rtt),
                                   f"ping {row.get('measurement_id', '?')}/{row['probe_id']}"))
    return out


def hop_verdicts_for_path(path: TracedPath, enricher: Enricher, registry: VantageRegistry,
                          regions: Regions | None = None,
                          ) -> tuple[Vantage | None, list[HopVerdict]]:
    """Hop verdicts of one traceroute, each physical verdict using its address's region in
    ``regions`` (default: the path's own replies only)."""
    vantage = registry.resolve(path.probe_id, path.vantage_point, path.probe_public_address)
    if regions is None:
        regions = Regions(path_observations(path, vantage))
    return vantage, [
        enricher.hop_verdict(HopRecord(address, rtt, vantage, hop,
                                       address == path.destination_address),
                             regions.region(address, vantage))
        for (hop, address), rtt in sorted(path.hops.items())
    ]


def end_to_end_refutations(path: TracedPath, vantage: Vantage | None,
                           hops: Sequence[HopVerdict],
                           regions: Regions | None) -> dict[tuple[int, str], Refutation]:
    """(hop, address) -> the later reply that refutes that hop's US placement. A later hop
    counts with its *largest* RTT: every probe to it must have been too fast for the detour
    (one fast reply among slow ones is a packet that took another path); private addresses
    do not count (a home router answering from 192.168.x.x is not on the path beyond)."""
    if vantage is None:
        return {}
    later = [(h.record.hop, h.record.address,
              path.slowest.get((h.record.hop, h.record.address), h.record.rtt_ms))
             for h in hops if h.record.rtt_ms is not None and is_public(h.record.address)]
    diverges = first_divergence(path.hops)
    clean = clean_hops(path.hops, path.timeouts)
    origin = f"traceroute {path.measurement_id}/{path.probe_id} at {path.timestamp}"
    found = {}
    for hop in hops:
        if hop.physical.is_us:
            refutation = end_to_end_refutation(vantage, (hop.record.hop, hop.record.address),
                                               later, regions, diverges_at=diverges,
                                               clean=clean, origin=origin)
            if refutation is not None:
                found[(hop.record.hop, hop.record.address)] = refutation
    return found


def verdicts_for_path(path: TracedPath, enricher: Enricher, registry: VantageRegistry,
                      *, anycast: bool = False,
                      proofs: Mapping[str, HopVerdict] | None = None) -> PathResult:
    """Hop verdicts and the path verdict of one traceroute.

    ``proofs`` (address -> a hop verdict of that address from any vantage point, e.g. one
    that physics proved not to be in the US) adds that reply's disc to the address's region.
    The caller leaves anycast addresses out of ``proofs``: one anycast address is in several
    places."""
    vantage = registry.resolve(path.probe_id, path.vantage_point, path.probe_public_address)
    observations = path_observations(path, vantage)
    for address, proof in (proofs or {}).items():
        if proof.record.vantage is not None and proof.record.rtt_ms is not None:
            observations.append(Observation(address, proof.record.vantage, proof.record.rtt_ms,
                                            "earlier result"))
    return verdicts_for_paths([path], enricher, registry,
                              frozenset({path.destination_address}) if anycast else frozenset(),
                              observations)[0]


def _classify(path: TracedPath, vantage: Vantage | None, hops: list[HopVerdict],
              enricher: Enricher, regions: Regions, anycast: bool,
              refuted: Mapping[str, Refutation]) -> PathResult:
    on_the_way = [h for h in hops if not h.record.is_destination]
    replied = [h for h in hops if h.record.is_destination]
    if replied:
        destination = min(replied, key=lambda h: h.record.rtt_ms if h.record.rtt_ms is not None
                          else float("inf"))
    else:  # not answered on this path: what the window knows about it
        destination = enricher.hop_verdict(
            HopRecord(path.destination_address, None, vantage, 0, True),
            regions.region(path.destination_address, vantage))
        destination = _refuted(enricher, destination, regions,
                               refuted.get(path.destination_address))
    return PathResult(path, vantage, hops, classify_path(on_the_way, destination,
                                                         anycast=anycast), regions)


def verdicts_for_paths(paths: Sequence[TracedPath], enricher: Enricher,
                       registry: VantageRegistry,
                       anycast_addresses: frozenset[str] = frozenset(),
                       observations: Iterable[Observation] = ()) -> list[PathResult]:
    """Every path of a window, with every proof the window holds.

    1. Regions: every address's discs from every path (and ``observations``, e.g. the
       window's pings, :func:`ping_observations`) intersect (constraint-based geolocation),
       except for ``anycast_addresses`` and addresses whose discs do not intersect.
    2. Hop verdicts use their address's region (claims checked, physics-only location).
    3. End to end: a US hop that a later reply of its path refutes is corrected, on every
       path of the window when the address is one place.
    """
    vantages = [registry.resolve(p.probe_id, p.vantage_point, p.probe_public_address)
                for p in paths]
    every = [o for path, vantage in zip(paths, vantages, strict=True)
             for o in path_observations(path, vantage)]
    regions = Regions([*every, *observations], anycast_addresses)
    first = [hop_verdicts_for_path(path, enricher, registry, regions)[1] for path in paths]
    everywhere: dict[str, Refutation] = {}
    here: list[dict[tuple[int, str], Refutation]] = []
    for path, vantage, hops in zip(paths, vantages, first, strict=True):
        found = end_to_end_refutations(path, vantage, hops, regions)
        here.append(found)
        for (_hop, address), refutation in found.items():
            if regions.is_one_place(address):
                everywhere.setdefault(address, refutation)
    results = []
    for path, vantage, hops, found in zip(paths, vantages, first, here, strict=True):
        if everywhere or found:
            hops = [_refuted(enricher, hop, regions, found.get((hop.record.hop,
                                                                hop.record.address))
                             or everywhere.get(hop.record.address)) for hop in hops]
        results.append(_classify(path, vantage, hops, enricher, regions,
                                 path.destination_address in anycast_addresses, everywhere))
    return results


def _refuted(enricher: Enricher, hop: HopVerdict, regions: Regions,
             refutation: Refutation | None) -> HopVerdict:
    if refutation is None or not hop.physical.is_us:
        return hop
    return enricher.hop_verdict(hop.record, regions.region(hop.record.address,
                                                           hop.record.vantage), refutation)
