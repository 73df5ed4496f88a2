"""The hop-verdict and path-verdict stages of a window (pure: rows in, verdicts out).

:func:`paths_from_rows` / :func:`paths_from_mda_rows` turn ``traceroute_hops`` /
``mda_links``-shaped dicts (as ``schemas.normalize`` produces and ClickHouse returns them)
into forward paths. Then two stages, each a clear function boundary:

1. :func:`hop_stage` — **the** hop-verdict stage: both axes for every reply of every path,
   computed once per window with every proof the window holds (an address that physics
   proved not to be in the US from one vantage point is not in the US on any other path;
   an address that one vantage point placed stands in for the same address where it could
   not be placed). Anycast addresses (the path graph's anycast finding) take no proof from
   other vantage points: each path places them by its own RTT disc (:func:`place_anycast`).
   Further physics (end-to-end constraints, constraint-based geolocation across vantage
   points, ping RTTs) belongs in this stage: :func:`apply_window_proofs` is the place.
2. :func:`classify_stage` — the path class of each path (``consumers.verdicts``) from its
   hop verdicts, the anycast flag and the operator a CNAME chain names.

:func:`verdicts_for_paths` runs both (what benches, tests and ``grenswacht graph`` on a fresh
store call); the analysis pipeline (``consumers.pipeline``) calls the stages itself so the
path graph runs between them. Storage is ``consumers.pipeline``'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from consumers.enrich.hops import NEAR_VANTAGE_KM, Enricher, HopRecord, HopVerdict, PhysicalVerdict
from consumers.enrich.legal import LegalVerdict
from consumers.enrich.vantage import Vantage
from consumers.verdicts import PathVerdict, classify_path
from schemas.normalize import epoch_seconds

TRACEROUTE = "traceroute"
MDA = "mda"


class Resolver(Protocol):
    """Where a vantage point is (``consumers.enrich.vantage.VantageRegistry``)."""

    def resolve(self, probe_id: int, vantage_point: str = "",
                public_address: str = "") -> Vantage | None: ...


@dataclass(slots=True)
class TracedPath:
    """One traceroute (or MDA) result: who measured, to where, and the minimum RTT per reply
    address. An MDA result is one path over all its branches (no RTTs)."""

    source: str
    measurement_id: int
    probe_id: int
    timestamp: int  # seconds since the epoch
    vantage_point: str
    destination_address: str
    destination_name: str
    probe_public_address: str
    hops: dict[tuple[int, str], float | None] = field(default_factory=dict)
    kind: str = TRACEROUTE
    paris_id: int | None = None

    @property
    def key(self) -> tuple[str, int, int, int, str]:
        return (self.source, self.measurement_id, self.probe_id, self.timestamp,
                self.destination_address)

    @property
    def address_family(self) -> int:
        return 6 if ":" in self.destination_address else 4

    def add(self, hop: int, address: str, rtt_ms: float | None) -> None:
        if not address:
            return
        key = (hop, address)
        known = self.hops.get(key)
        if key not in self.hops or (rtt_ms is not None and (known is None or rtt_ms < known)):
            self.hops[key] = rtt_ms


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
            paris = row.get("paris_id")
            path = paths[key] = TracedPath(
                str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]),
                _epoch(row["timestamp"]), str(row.get("vantage_point") or ""),
                str(row["destination_address"]), str(row.get("destination_name") or ""),
                str(row.get("probe_public_address") or ""),
                paris_id=None if paris is None else int(paris),
            )
        if not row.get("is_timeout"):
            path.add(int(row["hop"]), str(row.get("reply_address") or ""), row.get("rtt_ms"))
    return list(paths.values())


def paths_from_mda_rows(rows: Iterable[Mapping[str, Any]]) -> list[TracedPath]:
    """One path per MDA result, holding every interface of every branch (``mda_links``)."""
    paths: dict[tuple[Any, ...], TracedPath] = {}
    for row in rows:
        if not row["destination_address"]:
            continue
        key = (row["source"], row["measurement_id"], row["probe_id"], _epoch(row["timestamp"]),
               row["destination_address"])
        path = paths.get(key)
        if path is None:
            path = paths[key] = TracedPath(
                str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]),
                _epoch(row["timestamp"]), str(row.get("vantage_point") or ""),
                str(row["destination_address"]), str(row.get("destination_name") or ""), "",
                kind=MDA,
            )
        ttl = int(row["ttl"])
        path.add(ttl, str(row.get("near_address") or ""), None)
        path.add(ttl + 1, str(row.get("far_address") or ""), None)
    return list(paths.values())


@dataclass(slots=True)
class HopStage:
    """The hop verdicts of one path, and the verdict that stands for its destination."""

    path: TracedPath
    vantage: Vantage | None
    hops: list[HopVerdict]
    destination: HopVerdict


@dataclass(slots=True)
class PathResult:
    path: TracedPath
    vantage: Vantage | None
    hops: list[HopVerdict]
    verdict: PathVerdict
    home_set: str = ""  # consumers.home: '' = a reference vantage point
    applications: tuple[str, ...] = ()


def hop_verdicts_for_path(path: TracedPath, enricher: Enricher,
                          registry: Resolver) -> tuple[Vantage | None, list[HopVerdict]]:
    """Both axes for every reply of one path, from its own RTTs only."""
    vantage = registry.resolve(path.probe_id, path.vantage_point, path.probe_public_address)
    return vantage, [
        enricher.hop_verdict(HopRecord(address, rtt, vantage, hop,
                                       address == path.destination_address))
        for (hop, address), rtt in sorted(path.hops.items())
    ]


def _apply_proof(hop: HopVerdict, proofs: Mapping[str, HopVerdict]) -> HopVerdict:
    """A US claim is overridden by a proof that the address is not in the US; an address
    that could not be placed takes the place another vantage point gave it."""
    proof = proofs.get(hop.record.address)
    if proof is None or proof is hop:
        return hop
    vantage = proof.record.vantage.key if proof.record.vantage else "?"
    if hop.physical.is_us:
        note = (f"proved not in the US by its reply to vantage point {vantage} in "
                f"{proof.record.rtt_ms} ms (same address, not anycast); {proof.physical.note}")
    elif not hop.physical.country and proof.physical.country:
        note = (f"placed by its reply to vantage point {vantage} in {proof.record.rtt_ms} ms "
                f"(same address, not anycast); {proof.physical.note}")
    else:
        return hop
    physical = replace(proof.physical, bound=hop.physical.bound, note=note.strip().rstrip(";"))
    return replace(hop, physical=physical)


def _better_proof(hop: HopVerdict, known: HopVerdict | None) -> bool:
    if known is None:
        return True
    if bool(hop.physical.country) != bool(known.physical.country):
        return bool(hop.physical.country)  # a placed proof beats an unplaced one
    return (hop.record.rtt_ms or 0) < (known.record.rtt_ms or 0)


def window_proofs(first: Sequence[tuple[TracedPath, Vantage | None, list[HopVerdict]]],
                  anycast_addresses: frozenset[str]) -> dict[str, HopVerdict]:
    """address -> the reply that physics proved not to be in the US (placed ones first,
    then the smallest RTT), from any vantage point; anycast addresses have none."""
    proofs: dict[str, HopVerdict] = {}
    for _path, _vantage, hops in first:
        for hop in hops:
            address = hop.record.address
            if hop.physical.us_possible is False and address not in anycast_addresses:
                if _better_proof(hop, proofs.get(address)):
                    proofs[address] = hop
    return proofs


def place_anycast(hop: HopVerdict) -> HopVerdict:
    """An anycast address is wherever the site this vantage point reaches is: placed by the
    path's own RTT disc only (geo databases name one country for a prefix served from many;
    other vantage points reach other sites). Within ``NEAR_VANTAGE_KM`` of the vantage point
    it is placed in the vantage point's country (low confidence); otherwise unplaced."""
    bound, vantage = hop.physical.bound, hop.record.vantage
    if bound is None or vantage is None:
        physical = PhysicalVerdict("", "none", None, None, hop.physical.sources, (),
                                   "anycast; no RTT from a located vantage point places the "
                                   "site it reaches")
        return replace(hop, physical=physical)
    reach = bound.bound_km + vantage.uncertainty_km
    if reach <= NEAR_VANTAGE_KM and vantage.country:
        physical = PhysicalVerdict(
            vantage.country, "low", bound.us_possible, bound, hop.physical.sources,
            hop.physical.corrections,
            f"anycast; the site vantage point {vantage.key} reaches is within {reach:.0f} km "
            f"of it, placed in {vantage.country}")
    else:
        not_us = "provably not in the US; " if bound.us_possible is False else ""
        physical = PhysicalVerdict(
            "", "none", bound.us_possible, bound, hop.physical.sources,
            hop.physical.corrections,
            f"anycast; {not_us}the site vantage point {vantage.key} reaches is within "
            f"{reach:.0f} km of it")
    return replace(hop, physical=physical)


def apply_window_proofs(
    first: Sequence[tuple[TracedPath, Vantage | None, list[HopVerdict]]],
    anycast_addresses: frozenset[str],
) -> list[tuple[TracedPath, Vantage | None, list[HopVerdict]]]:
    """Every hop verdict with the proofs of the whole window applied (the place for
    cross-vantage-point physics)."""
    proofs = window_proofs(first, anycast_addresses)
    out = []
    for path, vantage, hops in first:
        final = [place_anycast(hop) if hop.record.address in anycast_addresses
                 else _apply_proof(hop, proofs) for hop in hops]
        out.append((path, vantage, final))
    return out


def hop_stage(paths: Sequence[TracedPath], enricher: Enricher, registry: Resolver,
              anycast_addresses: frozenset[str] = frozenset()) -> list[HopStage]:
    """The hop verdicts of every path of a window, once (see the module docstring)."""
    first = [(path, *hop_verdicts_for_path(path, enricher, registry)) for path in paths]
    proofs = window_proofs(first, anycast_addresses)
    stages = []
    for path, vantage, hops in apply_window_proofs(first, anycast_addresses):
        replied = [h for h in hops if h.record.is_destination]
        if replied:
            destination = min(replied, key=lambda h: h.record.rtt_ms if h.record.rtt_ms
                              is not None else float("inf"))
        elif path.destination_address in proofs:
            destination = proofs[path.destination_address]
        else:
            claim = enricher.hop_verdict(HopRecord(path.destination_address, None, vantage, 0,
                                                   True))
            destination = (place_anycast(claim) if path.destination_address
                           in anycast_addresses else claim)
        stages.append(HopStage(path, vantage, hops, destination))
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
        out.append(PathResult(stage.path, stage.vantage, stage.hops, verdict))
    return out


def verdicts_for_paths(paths: Sequence[TracedPath], enricher: Enricher,
                       registry: Resolver,
                       anycast_addresses: frozenset[str] = frozenset()) -> list[PathResult]:
    """Hop verdicts and path verdicts of every path of a window (both stages)."""
    return classify_stage(hop_stage(paths, enricher, registry, anycast_addresses),
                          anycast_addresses)
