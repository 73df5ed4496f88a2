"""Physics across replies: constraint-based geolocation and the end-to-end constraint.

**Across vantage points** (constraint-based geolocation, CBG): every vantage point that saw
an address in a window — on a traceroute, or by pinging it (``ping_results``; confirmation
pings from probes near a claimed location land here too) — puts it within ``rtt x 100 km``
of itself. One address in one place lies in the intersection of all those discs, so a
bound from any of them holds for all: :class:`AddressRegion`. Anycast addresses (the graph's
anycast findings) are not one place and keep only the disc of the vantage point at hand, and
so does an address whose discs do not intersect (a sign of anycast not yet detected, or of a
wrong vantage position).

**End to end**: a traceroute's probe to a later hop *j* went through hop *k*, so
``RTT(j) >= (d(VP,k) + d(k,j) + d(j,VP)) / 200 km/ms``. For a US claim of hop *k* every
distance is bounded below: ``d(VP,k) >= d(VP region, US)``, ``d(k,j) >= d(US, region of j)``,
``d(j,VP) >= d(region of j, VP region)``; and by the triangle inequality the sum is at least
``2 d(VP region, US)`` whatever *j*'s region. A later hop (or the destination) that answered
faster than that refutes the claim: :func:`end_to_end_refutation`. It assumes the probes to
*k* and *j* took one forward path up to *k* (Paris traceroute keeps the flow fixed), which
per-packet load balancing or a tunnel that carries some packets breaks (seen in the corpus:
a probe whose every other packet crossed a tunnel to the US). So it is applied only when
(a) no hop up to *j* answered from more than one address, (b) every probe at *k*'s and at
*j*'s hop was answered, by that one address, and (c) *j* counts with its *largest* RTT:
every probe to it was too fast for the detour, not one lucky packet.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.enrich.geo import is_public
from consumers.enrich.locate import Disc, Location, locate
from consumers.enrich.physics import (
    KM_PER_MS_ONE_WAY,
    bound_km,
    region_distance_km,
    vantage_distance_km,
    vantage_us_distance_km,
)
from consumers.enrich.vantage import Vantage

MAX_OBSERVATIONS = 24  # smallest discs kept per address
EVIDENCE_OBSERVATIONS = 5  # of which the evidence JSON shows


@dataclass(frozen=True, slots=True)
class Observation:
    """The smallest RTT from one vantage point to one address, and where it came from."""

    address: str
    vantage: Vantage
    rtt_ms: float
    origin: str = ""  # e.g. "traceroute 5001/6012" or "ping 7001/6012"

    @property
    def reach_km(self) -> float:
        return bound_km(self.rtt_ms)

    @property
    def radius_km(self) -> float:
        """Radius of a disc around the vantage point's centre that holds the address."""
        return self.reach_km + self.vantage.uncertainty_km

    def us_distance_km(self) -> float:
        """Lower bound on the distance from where the address may be to the US."""
        return self.country_distance_km("US*")

    def country_distance_km(self, code: str) -> float:
        """Lower bound on the distance from where the address may be to a country."""
        return max(vantage_distance_km(self.vantage, code) - self.reach_km, 0.0)

    def distance_to_vantage_km(self, vantage: Vantage) -> float:
        return max(region_distance_km(self.vantage, vantage) - self.reach_km, 0.0)

    def disc(self) -> Disc:
        return Disc(self.vantage.latitude, self.vantage.longitude, self.radius_km)

    def as_dict(self) -> dict[str, Any]:
        return {"vantage": self.vantage.key, "rtt_ms": self.rtt_ms,
                "within_km": round(self.radius_km, 1), "origin": self.origin,
                "vantage_basis": self.vantage.basis}


def separated(a: Observation, b: Observation) -> bool:
    """True when no single place lies within both discs."""
    return region_distance_km(a.vantage, b.vantage) > a.reach_km + b.reach_km


def consistent(found: Sequence[Observation]) -> tuple[list[Observation] | None,
                                                   list[Observation]]:
    """The observations that can all hold one place, and those left out.

    Discs of one address that cannot both hold it mean anycast or a vantage point that is
    not where its metadata says (seen in RIPE Atlas: a probe moved without updating its
    position). The disc in the most conflicts is left out until none remain; if that takes
    more than a third of them (or leaves fewer than two), the address is not treated as one
    place: ``(None, [])``."""
    conflicts = {i: {j for j, b in enumerate(found) if j != i and separated(a, b)}
                 for i, a in enumerate(found)}
    left_out: list[int] = []
    while any(conflicts[i] for i in conflicts):
        worst = max(conflicts, key=lambda i: (len(conflicts[i]), found[i].radius_km))
        left_out.append(worst)
        del conflicts[worst]
        for others in conflicts.values():
            others.discard(worst)
    if left_out and (len(left_out) > len(found) // 3 or len(found) - len(left_out) < 2):
        return None, []
    return [found[i] for i in sorted(conflicts)], [found[i] for i in left_out]


@dataclass(slots=True)
class AddressRegion:
    """Where one address can be: inside every observation's disc."""

    address: str
    observations: tuple[Observation, ...]  # smallest disc first
    single_place: bool = True
    note: str = ""
    _location: Location | None = field(default=None, repr=False)
    _located: bool = field(default=False, repr=False)
    _by_code: dict[str, tuple[float, Observation | None]] = field(default_factory=dict,
                                                                  repr=False)

    def us_distance_km(self) -> float:
        """Lower bound on the distance to US territory (0: the address may be in the US)."""
        return self.country_distance_km("US*")[0]

    def us_refuter(self) -> Observation | None:
        """The observation that proves the address is not in the US, if any."""
        distance, best = self.country_distance_km("US*")
        return best if distance > 0 else None

    def country_distance_km(self, code: str) -> tuple[float, Observation | None]:
        """Lower bound on the distance to a country's shape (``US*``: all US territory), and
        the observation giving it (cached per code)."""
        found = self._by_code.get(code)
        if found is None:
            found = (0.0, None)
            for observation in self.observations:
                distance = observation.country_distance_km(code)
                if distance > found[0]:
                    found = (distance, observation)
            self._by_code[code] = found
        return found

    def distance_to_vantage_km(self, vantage: Vantage) -> float:
        return max((o.distance_to_vantage_km(vantage) for o in self.observations), default=0.0)

    def location(self) -> Location | None:
        """The countries the intersection can touch (computed once, on first use)."""
        if not self._located:
            self._location = locate([o.disc() for o in self.observations])
            self._located = True
        return self._location

    def vantage_confidence(self) -> str:
        return "high" if all(o.vantage.confidence == "high" for o in self.observations) \
            else "low"

    def as_dict(self) -> dict[str, Any]:
        """Evidence: the smallest discs (at most :data:`EVIDENCE_OBSERVATIONS`), and the one
        that proves the address is not in the US when it is not among them."""
        shown = list(self.observations[:EVIDENCE_OBSERVATIONS])
        refuter = self.us_refuter()
        if refuter is not None and refuter not in shown:
            shown.append(refuter)
        return {"observations": [o.as_dict() for o in shown],
                "observation_count": len(self.observations),
                "single_place": self.single_place, "note": self.note}


class Regions:
    """Every address's region in one window (the observations of all its paths and pings)."""

    def __init__(self, observations: Iterable[Observation],
                 anycast_addresses: frozenset[str] = frozenset()) -> None:
        best: dict[tuple[str, str], Observation] = {}
        for observation in observations:
            if observation.rtt_ms is None or observation.rtt_ms < 0:
                continue
            key = (observation.address, observation.vantage.key)
            known = best.get(key)
            if known is None or observation.rtt_ms < known.rtt_ms:
                best[key] = observation
        self._own = best
        grouped: dict[str, list[Observation]] = {}
        for (address, _key), observation in best.items():
            grouped.setdefault(address, []).append(observation)
        self._shared: dict[str, AddressRegion] = {}
        self._alone: dict[str, str] = {}
        self._own_regions: dict[tuple[str, str], AddressRegion] = {}
        for address, found in grouped.items():
            found.sort(key=lambda o: o.radius_km)
            del found[MAX_OBSERVATIONS:]
            if address in anycast_addresses:
                self._alone[address] = "anycast (path-graph finding): not one place"
                continue
            kept, dropped = consistent(found)
            if kept is None:
                self._alone[address] = ("the discs of its vantage points do not intersect: "
                                        "not one place (anycast?)")
                continue
            note = "" if not dropped else (
                "left out, their discs miss the others' common area (wrong registered "
                "position?): " + ", ".join(f"{o.vantage.key} {o.rtt_ms:.1f} ms" for o in dropped))
            self._shared[address] = AddressRegion(address, tuple(kept), note=note)

    def region(self, address: str, vantage: Vantage | None = None) -> AddressRegion | None:
        """The shared region of a one-place address; otherwise only ``vantage``'s own disc."""
        shared = self._shared.get(address)
        if shared is not None:
            return shared
        if vantage is None:
            return None
        key = (address, vantage.key)
        region = self._own_regions.get(key)
        if region is None and key in self._own:
            region = self._own_regions[key] = AddressRegion(
                address, (self._own[key],), False, self._alone.get(address, ""))
        return region

    def is_one_place(self, address: str) -> bool:
        return address in self._shared

    def __len__(self) -> int:
        return len(self._shared) + len(self._alone)


def traceroute_observations(
    vantage: Vantage | None, hops: Mapping[tuple[int, str], float | None], origin: str,
) -> list[Observation]:
    """One observation per public reply address of one traceroute (its smallest RTT)."""
    if vantage is None:
        return []
    best: dict[str, float] = {}
    for (_hop, address), rtt in hops.items():
        if rtt is not None and rtt >= 0 and is_public(address):
            best[address] = min(rtt, best.get(address, rtt))
    return [Observation(address, vantage, rtt, origin) for address, rtt in best.items()]


@dataclass(frozen=True, slots=True)
class Refutation:
    """A US claim for hop *k* that a later reply on the same path makes impossible."""

    claimed_hop: int
    claimed_address: str
    later_hop: int
    later_address: str
    later_rtt_ms: float  # the largest RTT of that hop's replies
    required_ms: float
    vantage_to_us_km: float
    us_to_later_km: float
    later_to_vantage_km: float
    vantage: str
    origin: str = ""  # the traceroute it was seen on

    def sentence(self) -> str:
        on = f" on {self.origin}" if self.origin else ""
        return (
            f"end to end{on}: every reply of hop {self.later_hop} ({self.later_address}) came back "
            f"to vantage point {self.vantage} within {self.later_rtt_ms:.1f} ms, and its "
            f"probes went through hop {self.claimed_hop}; via the US that path needs at least "
            f"{self.required_ms:.1f} ms "
            f"(vantage point -> US >= {self.vantage_to_us_km:.0f} km, US -> hop "
            f"{self.later_hop} >= {self.us_to_later_km:.0f} km, back >= "
            f"{self.later_to_vantage_km:.0f} km, at 200 km/ms), so hop {self.claimed_hop} "
            "is not in the US")

    def as_dict(self) -> dict[str, Any]:
        return {"constraint": "end_to_end", "claimed_hop": self.claimed_hop,
                "claimed_address": self.claimed_address, "later_hop": self.later_hop,
                "later_address": self.later_address, "later_rtt_ms": self.later_rtt_ms,
                "required_ms": round(self.required_ms, 2),
                "vantage_to_us_km": round(self.vantage_to_us_km, 1),
                "us_to_later_km": round(self.us_to_later_km, 1),
                "later_to_vantage_km": round(self.later_to_vantage_km, 1),
                "vantage": self.vantage, "seen_on": self.origin}


def clean_hops(hops: Iterable[tuple[int, str]], timeouts: Mapping[int, int]) -> set[int]:
    """The hops whose every probe was answered, all by one address."""
    addresses: dict[int, set[str]] = {}
    for hop, address in hops:
        addresses.setdefault(hop, set()).add(address)
    return {hop for hop, found in addresses.items() if len(found) == 1
            and not timeouts.get(hop)}


def first_divergence(hops: Iterable[tuple[int, str]]) -> int:
    """The first TTL that answered from more than one address (a path that changed between
    probes); a large number when none did."""
    seen: dict[int, str] = {}
    diverging = [hop for hop, address in sorted(hops)
                 if seen.setdefault(hop, address) != address]
    return min(diverging, default=1 << 30)


def end_to_end_refutation(
    vantage: Vantage, claimed: tuple[int, str], later: Sequence[tuple[int, str, float]],
    regions: Regions | None = None, *, diverges_at: int = 1 << 30,
    clean: Container[int] | None = None, origin: str = "",
) -> Refutation | None:
    """The strongest refutation of "hop ``claimed`` is in the US" by the replies ``later``
    ((hop, address, largest rtt_ms) of the same traceroute), or None when all allow it."""
    hop_k, address_k = claimed
    if clean is not None and hop_k not in clean:
        return None
    to_us = vantage_us_distance_km(vantage)
    strongest: Refutation | None = None
    for hop_j, address_j, rtt_j in later:
        if hop_j <= hop_k or hop_j >= diverges_at or rtt_j is None:
            continue
        if clean is not None and hop_j not in clean:
            continue
        region = regions.region(address_j, vantage) if regions is not None else None
        us_to_j = region.us_distance_km() if region is not None else 0.0
        j_to_vp = region.distance_to_vantage_km(vantage) if region is not None else 0.0
        needed_km = max(2 * to_us, to_us + us_to_j + j_to_vp)
        required = needed_km / KM_PER_MS_ONE_WAY
        if rtt_j < required and (strongest is None
                                 or required - rtt_j > strongest.required_ms
                                 - strongest.later_rtt_ms):
            strongest = Refutation(hop_k, address_k, hop_j, address_j, rtt_j, required, to_us,
                                   us_to_j, j_to_vp, vantage.key, origin)
    return strongest
