"""The hop-verdict and path-verdict stages of a window (pure: paths in, verdicts out).

Paths come from ``paths.py`` (:func:`paths_from_rows`, :func:`paths_from_mda_rows`,
re-exported here). Then two stages, each a clear function boundary:

1. :func:`hop_stage` — **the** hop-verdict stage: both axes for every reply of every path,
   computed once per window with every proof the window holds:

   * regions (constraint-based geolocation): every address's RTT discs from every vantage
     point of the window, and from pings (``ping_results``, e.g. confirmation pings),
     intersect (``constraints.Regions``); claims are checked against the region and where
     sources are silent or disagree the countries the region touches decide the bloc
     (physics-only location, ``hops.physical_verdict``);
   * the end-to-end constraint: a US claim for hop *k* must fit every later hop's RTT
     (:func:`end_to_end_refutations`); a refuted claim is corrected, on every path of the
     window when the address is one place;
   * anycast addresses (the path graph's anycast finding) are not one place: each path
     places them by its own RTT disc only, ignoring geo claims (:func:`place_anycast`).
2. :func:`classify_stage` — the path class of each path (``consumers.verdicts``) from its
   hop verdicts, the anycast flag and the operator a CNAME chain names.

:func:`verdicts_for_paths` runs both (what benches, tests and ``grenswacht graph`` on a fresh
store call); the analysis pipeline (``consumers.pipeline``) calls the stages itself so the
path graph runs between them. Storage is ``consumers.pipeline``'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from consumers.enrich.constraints import (
    Observation,
    Refutation,
    Regions,
    clean_hops,
    end_to_end_refutation,
    first_divergence,
)
from consumers.enrich.countries import bloc
from consumers.enrich.geo import is_public
from consumers.enrich.hops import (
    BASIS_NEAR_VANTAGE,
    NEAR_VANTAGE_KM,
    Enricher,
    HopRecord,
    HopVerdict,
    physical_verdict,
)
from consumers.enrich.legal import LegalVerdict
from consumers.enrich.paths import (
    MDA,
    TRACEROUTE,
    Resolver,
    TracedPath,
    path_observations,
    paths_from_mda_rows,
    paths_from_rows,
    ping_observations,
)
from consumers.enrich.vantage import Vantage
from consumers.verdicts import PathVerdict, classify_path

__all__ = [  # the path builders live in paths.py; callers may import them from here
    "MDA", "TRACEROUTE", "HopStage", "PathResult", "Resolver", "TracedPath",
    "classify_stage", "end_to_end_refutations", "hop_stage", "hop_verdicts_for_path",
    "path_observations", "paths_from_mda_rows", "paths_from_rows", "ping_observations",
    "place_anycast", "verdicts_for_paths",
]


@dataclass(slots=True)
class HopStage:
    """The hop verdicts of one path, and the verdict that stands for its destination."""

    path: TracedPath
    vantage: Vantage | None
    hops: list[HopVerdict]
    destination: HopVerdict
    regions: Regions | None = None  # the window's regions the verdicts used


@dataclass(slots=True)
class PathResult:
    path: TracedPath
    vantage: Vantage | None
    hops: list[HopVerdict]
    verdict: PathVerdict
    home_set: str = ""  # consumers.home: '' = a reference vantage point
    applications: tuple[str, ...] = ()
    regions: Regions | None = None  # the window's regions the verdicts used


def hop_verdicts_for_path(path: TracedPath, enricher: Enricher, registry: Resolver,
                          regions: Regions | None = None,
                          ) -> tuple[Vantage | None, list[HopVerdict]]:
    """Both axes for every reply of one path, each physical verdict using its address's
    region in ``regions`` (default: the path's own replies only)."""
    vantage = registry.resolve(path.probe_id, path.vantage_point, path.probe_public_address)
    if regions is None:
        regions = Regions(path_observations(path, vantage))
    return vantage, [
        enricher.hop_verdict(HopRecord(address, rtt, vantage, hop,
                                       address == path.destination_address),
                             regions.region(address, vantage))
        for (hop, address), rtt in sorted(path.hops.items())
    ]


def place_anycast(hop: HopVerdict, regions: Regions | None = None) -> HopVerdict:
    """An anycast address is wherever the site this vantage point reaches is: placed by the
    path's own RTT disc only (geo databases name one country for a prefix served from many;
    other vantage points reach other sites): the countries that disc touches decide the bloc
    (physics-only location); failing that, within ``NEAR_VANTAGE_KM`` of the vantage point
    it is placed in the vantage point's country (low confidence); otherwise unplaced."""
    record, vantage = hop.record, hop.record.vantage
    region = regions.region(record.address, vantage) if regions is not None else None
    physical = physical_verdict((), record.rtt_ms, vantage, region)
    sources = hop.physical.sources
    if physical.bloc:
        return replace(hop, physical=replace(physical, sources=sources,
                                             note=f"anycast; {physical.note}"))
    bound = physical.bound
    if bound is None or vantage is None:
        return replace(hop, physical=replace(
            physical, sources=sources, note="anycast; no RTT from a located vantage point "
            "places the site it reaches"))
    reach = bound.bound_km + vantage.uncertainty_km
    if reach <= NEAR_VANTAGE_KM and vantage.country:
        return replace(hop, physical=replace(
            physical, country=vantage.country, confidence="low", sources=sources,
            basis=BASIS_NEAR_VANTAGE, bloc=bloc(vantage.country),
            note=f"anycast; the site vantage point {vantage.key} reaches is within "
            f"{reach:.0f} km of it, placed in {vantage.country}"))
    not_us = "provably not in the US; " if physical.us_possible is False else ""
    return replace(hop, physical=replace(
        physical, sources=sources, note=f"anycast; {not_us}the site vantage point "
        f"{vantage.key} reaches is within {reach:.0f} km of it"))


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


def _refuted(enricher: Enricher, hop: HopVerdict, regions: Regions,
             refutation: Refutation | None) -> HopVerdict:
    if refutation is None or not hop.physical.is_us:
        return hop
    return enricher.hop_verdict(hop.record, regions.region(hop.record.address,
                                                           hop.record.vantage), refutation)


def hop_stage(paths: Sequence[TracedPath], enricher: Enricher, registry: Resolver,
              anycast_addresses: frozenset[str] = frozenset(),
              observations: Iterable[Observation] = ()) -> list[HopStage]:
    """The hop verdicts of every path of a window, once (see the module docstring);
    ``observations`` are RTTs from outside the paths (the window's pings:
    :func:`ping_observations`)."""
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
    stages = []
    for path, vantage, hops, found in zip(paths, vantages, first, here, strict=True):
        final = [place_anycast(hop, regions) if hop.record.address in anycast_addresses
                 else _refuted(enricher, hop, regions,
                               found.get((hop.record.hop, hop.record.address))
                               or everywhere.get(hop.record.address))
                 for hop in hops]
        replied = [h for h in final if h.record.is_destination]
        if replied:
            destination = min(replied, key=lambda h: h.record.rtt_ms if h.record.rtt_ms
                              is not None else float("inf"))
        else:  # not answered on this path: what the window knows about the address
            address = path.destination_address
            claim = enricher.hop_verdict(HopRecord(address, None, vantage, 0, True),
                                         regions.region(address, vantage))
            destination = (place_anycast(claim, regions) if address in anycast_addresses
                           else _refuted(enricher, claim, regions, everywhere.get(address)))
        stages.append(HopStage(path, vantage, final, destination, regions))
    return stages


NamedOperator = Callable[[TracedPath], LegalVerdict | None]


def classify_stage(stages: Sequence[HopStage],
                   anycast_addresses: frozenset[str] = frozenset(),
                   named_operator: NamedOperator | None = None) -> list[PathResult]:
    """The path verdict of every path from its hop verdicts (pure)."""
    out = []
    for stage in stages:
        on_the_way = [h for h in stage.hops if not h.record.is_destination]
        named = named_operator(stage.path) if named_operator is not None else None
        verdict = classify_path(on_the_way, stage.destination,
                                anycast=stage.path.destination_address in anycast_addresses,
                                named_operator=named)
        out.append(PathResult(stage.path, stage.vantage, stage.hops, verdict,
                              regions=stage.regions))
    return out


def verdicts_for_paths(paths: Sequence[TracedPath], enricher: Enricher,
                       registry: Resolver,
                       anycast_addresses: frozenset[str] = frozenset(),
                       observations: Iterable[Observation] = ()) -> list[PathResult]:
    """Hop verdicts and path verdicts of every path of a window (both stages)."""
    return classify_stage(hop_stage(paths, enricher, registry, anycast_addresses,
                                    observations), anycast_addresses)


