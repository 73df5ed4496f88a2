"""Which US claims deserve a confirmation ping (pure), and publishing the requests.

A hop whose US placement rests on a geo database alone — a source says US and the RTT
bound *allows* the US, but nothing proves it — can be settled by a few pings: from a RIPE
Atlas probe near the claimed US location (an answer in < 5 ms proves the address is within
500 km of it) and from one near the alternative in Europe (an answer in 3 ms puts it within
300 km of that probe, so not in the US). The scheduler makes those pings
(:mod:`scheduler.confirm`, within a daily credit budget); their results come back as
ordinary ``ping_results`` rows, which the constraint-based geolocation reads.

Interface for the analysis pipeline::

    requests = confirmation_requests(
        [HopObservation(verdict, evidence="hop_verdicts:atlas/1033154/6012/1381924800/7")],
        recent=tracker.recent, now=time.time())
    publish_requests(bus, requests)           # -> grenswacht.confirm-requests.v1

or, keeping the cool-down across windows, ``ConfirmationTracker(bus).offer(observations)``.

Candidates: the hop's physical verdict is the claimed country (``US``) with
``us_possible is True`` (a bound exists and allows it) and no observation of the same
address has a bound that rules the US out; the address is public; no source
calls its prefix anycast and it is not in ``anycast`` (a ping near one anycast site proves
nothing about the path from the Netherlands); not requested within ``cooldown_s``. One
request per address (the observation with the smallest RTT: the tightest bound), smallest
RTT first, at most ``limit``. The claimed location is the claiming source's coordinates
(when it has them); the alternative is the first European claim with coordinates, else the
vantage point's position when it is in Europe, else ``default_alternative``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from consumers.enrich.geo import is_public
from consumers.enrich.hops import HopVerdict
from consumers.graph.us_transit import EUROPE
from schemas import topics
from schemas.bus import Bus
from schemas.confirm import ConfirmationRequest

AMSTERDAM = (52.37, 4.90, "NL")
DEFAULT_COOLDOWN_S = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class HopObservation:
    verdict: HopVerdict
    evidence: str = ""  # where the claim is stored (table and natural key)


def _request(observation: HopObservation, now: float,
             default_alternative: tuple[float, float, str],
             claimed_country: str) -> ConfirmationRequest:
    verdict = observation.verdict
    claims = verdict.physical.sources
    claim = next(c for c in claims if c.country == claimed_country)
    alternative = next(
        ((c.latitude, c.longitude, c.country) for c in claims
         if c.country in EUROPE and c.latitude is not None and c.longitude is not None),
        None,
    )
    vantage = verdict.record.vantage
    if alternative is None and vantage is not None and vantage.country in EUROPE:
        alternative = (vantage.latitude, vantage.longitude, vantage.country)
    lat, lon, country = alternative or default_alternative
    key = vantage.key if vantage is not None else ""
    return ConfirmationRequest(
        address=verdict.record.address,
        claimed_country=claimed_country,
        claimed_latitude=claim.latitude,
        claimed_longitude=claim.longitude,
        claim_source=f"{claim.source} ({claim.dataset_version})",
        alternative_country=country,
        alternative_latitude=lat,
        alternative_longitude=lon,
        vantage_key=key,
        probe_id=int(key.removeprefix("atlas:")) if key.startswith("atlas:") else 0,
        rtt_ms=verdict.record.rtt_ms,
        evidence=observation.evidence,
        requested_at=now,
    )


def confirmation_requests(
    observations: Iterable[HopObservation],
    *,
    recent: Mapping[str, float] | None = None,
    now: float | None = None,
    cooldown_s: float = DEFAULT_COOLDOWN_S,
    limit: int = 20,
    anycast: frozenset[str] = frozenset(),
    claimed_country: str = "US",
    default_alternative: tuple[float, float, str] = AMSTERDAM,
) -> list[ConfirmationRequest]:
    """The confirmation requests these hop observations call for (pure; see the module
    docstring for the rules). ``recent`` maps address -> time it was last requested."""
    now = time.time() if now is None else now
    recent = recent or {}
    best: dict[str, HopObservation] = {}
    refuted: set[str] = set()
    for observation in observations:
        verdict = observation.verdict
        if verdict.physical.us_possible is False:
            refuted.add(verdict.record.address)  # another vantage point's RTT already settles it
        physical = verdict.physical
        address = verdict.record.address
        if physical.country != claimed_country or physical.us_possible is not True:
            continue
        if not is_public(address) or address in anycast:
            continue
        if any(c.anycast for c in physical.sources):
            continue
        if now - recent.get(address, float("-inf")) < cooldown_s:
            continue
        if not any(c.country == claimed_country for c in physical.sources):
            continue
        current = best.get(address)
        rtt = verdict.record.rtt_ms
        if current is None or (rtt is not None and (
            current.verdict.record.rtt_ms is None or rtt < current.verdict.record.rtt_ms
        )):
            best[address] = observation
    for address in refuted:
        best.pop(address, None)
    ordered = sorted(best.values(), key=lambda o: (
        o.verdict.record.rtt_ms is None, o.verdict.record.rtt_ms or 0.0, o.verdict.record.address))
    return [_request(o, now, default_alternative, claimed_country) for o in ordered[:limit]]


def publish_requests(bus: Bus, requests: Iterable[ConfirmationRequest]) -> int:
    """Publish on the confirm-requests topic (keyed by address) and flush."""
    count = 0
    for request in requests:
        bus.publish(topics.CONFIRM_REQUESTS, request.to_bytes(), key=request.address.encode(),
                    headers=[(topics.HEADER_SOURCE, b"analysis")])
        count += 1
    if count:
        bus.flush()
    return count


@dataclass
class ConfirmationTracker:
    """Remembers what was requested when (bounded), so windows do not repeat requests
    within the cool-down; the scheduler applies its own cool-down as well."""

    bus: Bus
    cooldown_s: float = DEFAULT_COOLDOWN_S
    limit: int = 20
    max_addresses: int = 50_000
    recent: dict[str, float] = field(default_factory=dict)

    def offer(self, observations: Iterable[HopObservation], *, now: float | None = None,
              anycast: frozenset[str] = frozenset()) -> list[ConfirmationRequest]:
        now = time.time() if now is None else now
        requests = confirmation_requests(observations, recent=self.recent, now=now,
                                         cooldown_s=self.cooldown_s, limit=self.limit,
                                         anycast=anycast)
        publish_requests(self.bus, requests)
        for request in requests:
            self.recent[request.address] = now
        if len(self.recent) > self.max_addresses:
            for address, _ in sorted(self.recent.items(), key=lambda kv: kv[1])[
                : len(self.recent) - self.max_addresses
            ]:
                del self.recent[address]
        return requests
