"""Anycast: one address answering from places that cannot be one place.

Physics (iGreedy / LACeS): a reply with RTT *r* ms seen from a vantage point lies in a disc
of radius ``r x 100 km`` (``consumers.enrich.physics.bound_km``) plus the vantage point's
position uncertainty around it. If two such discs do not intersect (the great-circle
distance between the vantage points exceeds the sum of the radii), no single location can
have sent both replies: the address is anycast. A greedy pick of pairwise disjoint discs,
smallest first, gives a lower bound on the number of sites (iGreedy's enumeration step).

RTTs come from traceroute replies of the address (destination or hop) and from DNS
responses sent straight to it (``dns_answers.response_time_ms`` includes the server's own
time, so its disc is larger, never wrong). DNS answers that name their site (CHAOS TXT
``id.server`` / ``hostname.bind``, NSID) are evidence too: two names for one address are
"anycast or several servers behind one address" (medium confidence alone), and they name
the site each vantage point reached. The site Dutch users reach is the one the vantage
points in the Netherlands (else the nearest to Amsterdam) reach.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from consumers.enrich.geo import is_public
from consumers.enrich.physics import bound_km, great_circle_km
from consumers.enrich.vantage import Vantage
from consumers.graph.build import Window
from schemas.findings import Finding, finding_id

AMSTERDAM = (52.37, 4.90)
MAX_DISCS = 200  # smallest discs kept per address (pairs grow quadratically)


@dataclass(frozen=True, slots=True)
class Disc:
    vantage: Vantage
    rtt_ms: float
    site: str = ""

    @property
    def radius_km(self) -> float:
        return bound_km(self.rtt_ms) + self.vantage.uncertainty_km

    def separated_from(self, other: Disc) -> float:
        """km between the discs' edges (> 0: they cannot both hold one location)."""
        distance = great_circle_km(self.vantage.latitude, self.vantage.longitude,
                                   other.vantage.latitude, other.vantage.longitude)
        return distance - self.radius_km - other.radius_km


def discs_by_address(window: Window) -> dict[str, list[Disc]]:
    """The smallest disc per vantage point for every address seen from a located VP."""
    best: dict[tuple[str, str], Disc] = {}
    public: dict[str, bool] = {}

    def offer(address: str, vantage: Vantage | None, rtt: float | None, site: str) -> None:
        if vantage is None or rtt is None or rtt <= 0 or not address:
            return
        if address not in public:
            public[address] = is_public(address)  # private space repeats in every network
        if not public[address]:
            return
        key = (address, vantage.key)
        known = best.get(key)
        if known is None or rtt < known.rtt_ms:
            best[key] = Disc(vantage, float(rtt), site or (known.site if known else ""))
        elif site and not known.site:
            best[key] = Disc(known.vantage, known.rtt_ms, site)

    for trace in window.traces:
        vantage = window.vantages.get(trace.vantage_key)
        if vantage is None:
            continue
        for hop, replies in trace.hops.items():
            for address, rtt in replies:
                if address:
                    offer(address, vantage, trace.min_rtt(hop, address) if rtt is None
                          else rtt, "")
    for sample in window.dns:
        offer(sample.server_address, window.vantages.get(sample.vantage_key),
              sample.response_time_ms, sample.site)
    out: dict[str, list[Disc]] = defaultdict(list)
    for (address, _vantage), disc in best.items():
        out[address].append(disc)
    for discs in out.values():
        discs.sort(key=lambda d: d.radius_km)
        del discs[MAX_DISCS:]
    return out


def disjoint_discs(discs: Iterable[Disc]) -> list[Disc]:
    """Greedy maximal set of pairwise disjoint discs, smallest first (a lower bound on the
    number of sites)."""
    chosen: list[Disc] = []
    for disc in sorted(discs, key=lambda d: d.radius_km):
        if all(disc.separated_from(other) > 0 for other in chosen):
            chosen.append(disc)
    return chosen


def proof_rests_on_one_vantage(discs: list[Disc], chosen: list[Disc]) -> bool:
    """True when leaving out one vantage point of the proof leaves no proof: a probe whose
    registered position is wrong (seen in RIPE Atlas probe metadata) would otherwise
    "prove" anycast on its own, so such a proof gets medium confidence only."""
    for left_out in chosen:
        rest = [d for d in discs if d.vantage.key != left_out.vantage.key]
        if len(disjoint_discs(rest)) < 2:
            return True
    return False


def dutch_disc(discs: list[Disc]) -> Disc | None:
    """The disc of the vantage point Dutch users are best represented by."""
    dutch = [d for d in discs if d.vantage.country == "NL"]
    if dutch:
        return min(dutch, key=lambda d: d.radius_km)
    if not discs:
        return None
    return min(discs, key=lambda d: great_circle_km(d.vantage.latitude, d.vantage.longitude,
                                                    *AMSTERDAM) + d.radius_km)


def _site_words(disc: Disc) -> str:
    where = (f"within {disc.radius_km:.0f} km of vantage point {disc.vantage.key} "
             f"({disc.vantage.latitude:.2f}, {disc.vantage.longitude:.2f}"
             + (f", {disc.vantage.country}" if disc.vantage.country else "") + ")")
    return f"{disc.site} ({where})" if disc.site else where


def _disc_dict(disc: Disc) -> dict[str, object]:
    return {"vantage": disc.vantage.key, "latitude": disc.vantage.latitude,
            "longitude": disc.vantage.longitude, "country": disc.vantage.country,
            "rtt_ms": disc.rtt_ms, "radius_km": round(disc.radius_km, 1),
            "position_uncertainty_km": disc.vantage.uncertainty_km, "site": disc.site}


def detect(window: Window) -> list[Finding]:
    """The registered detector: anycast addresses of a window, with the proof."""
    names = {t.destination_address: t.destination_name for t in window.traces}
    findings = []
    for address, discs in sorted(discs_by_address(window).items()):
        sites = sorted({d.site for d in discs if d.site})
        chosen = disjoint_discs(discs) if len(discs) > 1 else []
        if len(chosen) < 2 and len(sites) < 2:
            continue
        evidence: dict[str, object] = {
            "method": "speed-of-light (disjoint RTT discs)" if len(chosen) >= 2 else
            "DNS site names only",
            "sites_lower_bound": max(len(chosen), 1),
            "disjoint_discs": [_disc_dict(d) for d in chosen],
            "site_names": sites,
            "vantage_points": len(discs),
        }
        if len(chosen) >= 2:
            a, b = chosen[0], chosen[1]
            evidence["proof"] = (
                f"{a.vantage.key} saw a reply in {a.rtt_ms:.1f} ms (within {a.radius_km:.0f} "
                f"km) and {b.vantage.key} in {b.rtt_ms:.1f} ms (within {b.radius_km:.0f} km); "
                f"the two discs are {a.separated_from(b):.0f} km apart")
        dutch = dutch_disc(discs)
        if dutch is not None:
            evidence["dutch_site"] = _disc_dict(dutch)
        fragile = len(chosen) >= 2 and proof_rests_on_one_vantage(discs, chosen)
        evidence["proof_rests_on_one_vantage_point"] = fragile
        confidence = "high" if len(chosen) >= 2 and not fragile else "medium"
        if dutch is None:
            where = "anycast; no located vantage point tells which site Dutch users reach"
        elif dutch.vantage.country == "NL":
            where = f"anycast; the site Dutch users reach is near {_site_words(dutch)}"
        else:  # say so rather than pass a far-away probe's site off as the Dutch one
            where = ("anycast; no Dutch vantage point saw it; the one nearest the "
                     f"Netherlands reaches {_site_words(dutch)}")
        kind_of = "hop" if address not in names and not any(
            s.server_address == address for s in window.dns) else "address"
        summary = (f"{where}; at least {evidence['sites_lower_bound']} sites"
                   + (f", named {', '.join(sites[:8])}" if sites else ""))
        findings.append(Finding(
            finding_id=finding_id("anycast", address, window.start, window.end),
            kind="anycast", destination_address=address if kind_of == "address" else "",
            subject=address, destination_name=names.get(address, ""),
            applications=window.applications_of(address, names.get(address, "")),
            vantage_keys=tuple(sorted(d.vantage.key for d in chosen)),
            window_start=window.start, window_end=window.end, confidence=confidence,
            summary=summary, evidence=evidence,
        ))
    return findings
