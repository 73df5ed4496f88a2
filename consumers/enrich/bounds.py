"""Where the RTTs of every vantage point put one address (``grenswacht explain``).

Every vantage point that measured an address — traceroute replies from it, pings to it,
DNS responses from it — bounds it: its smallest RTT puts the address within
``RTT x 100 km`` of the vantage point, plus the uncertainty of the vantage point's own
position (``consumers.enrich.physics``; the same discs as the anycast detector's).

* :func:`tightest_per_vantage` (pure) keeps the smallest RTT of each located vantage point,
  tightest disc first;
* :func:`locate_address` turns each into a hop verdict with the pipeline's own code
  (:meth:`~consumers.enrich.hops.Enricher.hop_verdict`) and takes the address's verdict
  from the tightest bound that proves it is **not in the US** (a proof from one vantage
  point holds for every other, as in ``window.verdicts_for_paths``), else from the
  tightest bound. An anycast address is in several places: no bound is the address's, so
  no single country is claimed;
* :func:`read_observations` reads the smallest RTT per vantage point from the store (the
  only I/O here).

Each disc is used on its own; the intersection of all discs (constraint-based
geolocation) is not computed here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from consumers.enrich.geo import is_public
from consumers.enrich.hops import Enricher, HopRecord, HopVerdict
from consumers.enrich.physics import bound_km
from consumers.enrich.vantage import Vantage, VantageRegistry, vantage_key
from schemas.store import Store


@dataclass(frozen=True, slots=True)
class Observation:
    """The smallest RTT one vantage point saw to (or from) an address."""

    vantage: Vantage
    rtt_ms: float
    kinds: tuple[str, ...] = ("traceroute",)  # traceroute, ping, dns
    results: int = 1  # results of the vantage point that saw the address
    last_seen: dt.datetime | None = None

    @property
    def radius_km(self) -> float:
        """The disc the address lies in: RTT x 100 km + the position's uncertainty."""
        return bound_km(self.rtt_ms) + self.vantage.uncertainty_km

    def as_dict(self) -> dict[str, Any]:
        return {"vantage": self.vantage.as_dict(), "rtt_ms": self.rtt_ms,
                "radius_km": round(self.radius_km, 1), "kinds": list(self.kinds),
                "results": self.results,
                "last_seen": self.last_seen.isoformat() if self.last_seen else None}


def tightest_per_vantage(observations: Iterable[Observation]) -> list[Observation]:
    """The smallest positive RTT of every vantage point (kinds and result counts of the
    vantage point merged), tightest disc first (ties by vantage key)."""
    best: dict[str, Observation] = {}
    for seen in observations:
        if not seen.rtt_ms > 0:
            continue
        known = best.get(seen.vantage.key)
        if known is None:
            best[seen.vantage.key] = seen
            continue
        winner = seen if seen.rtt_ms < known.rtt_ms else known
        last = max((t for t in (seen.last_seen, known.last_seen) if t is not None), default=None)
        best[seen.vantage.key] = Observation(
            winner.vantage, winner.rtt_ms, tuple(sorted({*known.kinds, *seen.kinds})),
            known.results + seen.results, last)
    return sorted(best.values(), key=lambda o: (o.radius_km, o.vantage.key))


@dataclass(frozen=True, slots=True)
class VantageBound:
    observation: Observation
    verdict: HopVerdict  # the hop verdict of this vantage point's smallest RTT

    @property
    def proves_not_us(self) -> bool:
        return self.verdict.physical.us_possible is False

    def as_dict(self) -> dict[str, Any]:
        bound = self.verdict.physical.bound
        return {**self.observation.as_dict(), "proves_not_in_us": self.proves_not_us,
                "us_distance_km": round(bound.us_distance_km, 1) if bound else None,
                "country": self.verdict.physical.country}


@dataclass(frozen=True, slots=True)
class AddressLocation:
    address: str
    verdict: HopVerdict
    bounds: tuple[VantageBound, ...]  # tightest first
    anycast: bool = False

    @property
    def tightest(self) -> VantageBound | None:
        return self.bounds[0] if self.bounds else None

    @property
    def proof(self) -> VantageBound | None:
        """The tightest bound proving the address is not in the US (none for anycast)."""
        if self.anycast:
            return None
        return next((b for b in self.bounds if b.proves_not_us), None)


def locate_address(enricher: Enricher, address: str, observations: Iterable[Observation],
                   *, anycast: bool = False) -> AddressLocation:
    """Both axes for ``address`` bounded by every vantage point's smallest RTT (see the
    module docstring). ``anycast``: the address is proven anycast (a stored finding)."""
    bounds = tuple(
        VantageBound(seen, enricher.hop_verdict(HopRecord(address, seen.rtt_ms, seen.vantage)))
        for seen in tightest_per_vantage(observations))
    unbounded = enricher.hop_verdict(HopRecord(address, None, None))
    if anycast:
        physical = replace(
            unbounded.physical, country="", confidence="none", us_possible=None,
            note="anycast: one address served from several places; no single country")
        return AddressLocation(address, replace(unbounded, physical=physical), bounds, True)
    location = AddressLocation(address, unbounded, bounds)
    chosen = location.proof or location.tightest
    return replace(location, verdict=chosen.verdict) if chosen else location


_OBSERVATIONS_SQL = """
SELECT 'traceroute' AS kind, probe_id, vantage_point,
       any(probe_public_address) AS public_address, min(rtt_ms) AS best_rtt_ms,
       uniqExact(measurement_id, timestamp) AS results, max(timestamp) AS last_seen
FROM traceroute_hops
WHERE reply_address = {address:String} AND NOT is_timeout AND rtt_ms > 0
GROUP BY probe_id, vantage_point
UNION ALL
SELECT 'ping', probe_id, vantage_point, any(source_address), min(rtt_min_ms),
       uniqExact(measurement_id, timestamp), max(timestamp)
FROM ping_results
WHERE destination_address = {address:String} AND rtt_min_ms > 0
GROUP BY probe_id, vantage_point
UNION ALL
SELECT 'dns', probe_id, vantage_point, '', min(response_time_ms),
       uniqExact(measurement_id, timestamp), max(timestamp)
FROM dns_answers
WHERE resolver_address = {address:String} AND response_time_ms > 0
GROUP BY probe_id, vantage_point
"""


def read_observations(store: Store, address: str, registry: VantageRegistry,
                      ) -> tuple[list[Observation], list[str]]:
    """The smallest RTT per vantage point and kind for ``address`` from the store, and the
    vantage keys of those whose position is unknown (they cannot bound it). A private or
    other non-global address is another device in every network: nothing bounds it."""
    observations: list[Observation] = []
    unlocated: set[str] = set()
    if not is_public(address):
        return observations, []
    for row in store.query(_OBSERVATIONS_SQL, {"address": address}).as_dicts():
        probe_id, vantage_point = int(row["probe_id"]), str(row["vantage_point"] or "")
        public = str(row["public_address"] or "")
        vantage = registry.resolve(probe_id, vantage_point, public if is_public(public) else "")
        if vantage is None:
            unlocated.add(vantage_key(probe_id, vantage_point))
            continue
        last = row["last_seen"]
        if isinstance(last, dt.datetime) and last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        observations.append(Observation(vantage, float(row["best_rtt_ms"]), (str(row["kind"]),),
                                        int(row["results"]), last))
    return observations, sorted(unlocated)

