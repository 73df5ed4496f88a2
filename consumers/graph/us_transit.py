"""Routes through the US: paths (and load-balancer branches) with a hop physically in the US.

A hop counts only when its hop verdict (``consumers.enrich``) places it in the US — a geo
source says so *and* RTT physics allows it (``us_possible`` is not False). The evidence keeps
the RTT, the physics bound and the distance to the nearest US territory, so a reader can
check it. A *boomerang* is a path that is in Europe before the US hop (a European hop or
vantage point) and in Europe again after it (a later hop or the destination): traffic
between two European places that crossed the Atlantic. One finding per destination and US
interface, with every vantage point and flow that crossed it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from consumers.graph.build import HopEvidence, Trace, Window, is_us_country
from consumers.verdicts import EU_EEA
from schemas.findings import Finding, finding_id

EUROPE = EU_EEA | frozenset("GB CH RS BA ME MK AL MD UA XK AD MC SM VA".split())


def _is_us(found: HopEvidence) -> bool:
    return is_us_country(found.physical_country) and found.us_possible is not False


def path_countries(trace: Trace, window: Window) -> list[tuple[int, str, HopEvidence]]:
    """(hop, address, evidence) of every located reply of a trace, in hop order."""
    out = []
    for hop in sorted(trace.hops):
        for address in sorted({a for a, _ in trace.hops[hop] if a}):
            found = window.evidence.get((trace.key, hop, address))
            if found is not None:
                out.append((hop, address, found))
    return out


def detect(window: Window) -> list[Finding]:
    """The registered detector: US hops on forward paths, boomerangs marked."""
    crossings: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    names: dict[str, str] = {}
    for trace in window.traces:
        located = path_countries(trace, window)
        if not any(_is_us(found) for _, _, found in located):
            continue
        names[trace.destination_address] = trace.destination_name
        vantage = window.vantages.get(trace.vantage_key)
        start_country = vantage.country if vantage is not None else ""
        for index, (hop, address, found) in enumerate(located):
            if not _is_us(found):
                continue
            before = [f.physical_country for _, _, f in located[:index] if f.physical_country]
            after = [f.physical_country for _, _, f in located[index + 1:]
                     if f.physical_country]
            came_from_europe = start_country in EUROPE or any(c in EUROPE for c in before)
            boomerang = came_from_europe and any(c in EUROPE for c in after)
            crossings[(trace.destination_address, address)].append({
                "vantage": trace.vantage_key, "timestamp": trace.timestamp,
                "paris_id": trace.paris_id, "hop": hop, "rtt_ms": found.rtt_ms,
                "bound_km": found.bound_km, "us_distance_km": found.us_distance_km,
                "confidence": found.physical_confidence, "operator": found.legal_operator,
                "before": before, "after": after, "boomerang": boomerang,
            })
    findings = []
    for (destination, address), seen in sorted(crossings.items()):
        boomerang = any(s["boomerang"] for s in seen)
        vantages = tuple(sorted({s["vantage"] for s in seen}))
        best = min(seen, key=lambda s: s["rtt_ms"] if s["rtt_ms"] is not None else 1e9)
        is_destination = address == destination
        what = "the destination itself is" if is_destination else f"hop {address} is"
        summary = (f"{'boomerang: ' if boomerang else ''}the path to {destination} crosses the "
                   f"US: {what} physically in the US (RTT {best['rtt_ms']} ms allows it; "
                   f"seen by {len(vantages)} vantage point(s), {len(seen)} trace(s))")
        confidences = {s["confidence"] for s in seen}
        confidence = "high" if "high" in confidences else "medium" if (
            "medium" in confidences) else "low"
        findings.append(Finding(
            finding_id=finding_id("us_transit", destination, address, window.start,
                                  window.end),
            kind="us_transit", destination_address=destination, subject=address,
            destination_name=names.get(destination, ""),
            applications=window.applications_of(destination, names.get(destination, "")),
            vantage_keys=vantages, window_start=window.start, window_end=window.end,
            confidence=confidence, summary=summary,
            evidence={"boomerang": boomerang, "us_hop": address,
                      "is_destination": is_destination, "crossings": seen[:20],
                      "traces": len(seen), "paris_ids": sorted(
                          {s["paris_id"] for s in seen if s["paris_id"] is not None})},
        ))
    return findings
