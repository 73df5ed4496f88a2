"""Over the whole real corpus (fixtures + ~100,000 bulk traceroutes and their pings, in the
pipeline's hourly windows, anycast detector first): no path verdict keeps a hop in the US
that a later reply of the same traceroute rules out.

Two checks per US hop *k* of every path verdict:

* **independently**, in the triangle form ``RTT(j) >= 2 d(VP, US) / 200 km/ms`` with
  ``d(VP, US)`` computed here by brute force over the Natural Earth US shape densified to
  0.05 degrees (haversine to every point, minus 3 km for the spacing, minus the 0.5 %
  sphere/ellipsoid slack, the tolerance and the margin the pipeline subtracts), so never more
  than the pipeline's own bound: a flagged reply is one the pipeline should have used;
* in the **full form** (the later hop's region from every vantage point of the window), by
  the pipeline's own ``end_to_end_refutation`` on the final verdicts: nothing is left to
  refute.

Both apply the pipeline's documented guards: public later hops, hops answered on every
probe by one address, nothing beyond a hop with two addresses, the largest RTT of the
later hop.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import shapely

from consumers.enrich.constraints import clean_hops, end_to_end_refutation, first_divergence
from consumers.enrich.countries import us_territory
from consumers.enrich.geo import is_public
from consumers.enrich.sphere import DATA_MARGIN_KM, SAMPLE_TOLERANCE_KM, SPHERE_SLACK
from consumers.enrich.vantage import Vantage
from consumers.verdicts import HOSTED_IN_US
from tools.corpus_verdicts import (
    corpus_files,
    open_corpus_enricher,
    summary,
    window_results,
    windows,
)

DENSE_DEG = 0.05  # <= 5.6 km between points: every boundary point within 3 km of one


@cache
def _us_points() -> tuple[np.ndarray, shapely.Geometry]:
    territory = us_territory()
    coords = shapely.get_coordinates(shapely.segmentize(territory, DENSE_DEG))
    lat, lon = np.radians(coords[:, 1]), np.radians(coords[:, 0])
    shapely.prepare(territory)
    return np.stack([lat, lon], axis=-1), territory


@cache
def _independent_us_km(latitude: float, longitude: float, uncertainty: float) -> float:
    """A lower bound on the distance to US territory that never exceeds the pipeline's."""
    points, territory = _us_points()
    if shapely.contains_xy(territory, longitude, latitude):
        return 0.0
    phi, lam = math.radians(latitude), math.radians(longitude)
    half = (np.sin((points[:, 0] - phi) / 2) ** 2
            + math.cos(phi) * np.cos(points[:, 0]) * np.sin((points[:, 1] - lam) / 2) ** 2)
    nearest = 2 * 6371.0088 * float(np.arcsin(np.sqrt(half.min())))
    on_ellipsoid = (nearest - 3.0) * (1 - SPHERE_SLACK)
    return max(on_ellipsoid - SAMPLE_TOLERANCE_KM - DATA_MARGIN_KM - uncertainty, 0.0)


def _us_distance_km(vantage: Vantage) -> float:
    # a vantage point known only by its country: its covering disc (weaker, still a bound)
    return _independent_us_km(vantage.latitude, vantage.longitude, vantage.uncertainty_km)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_no_path_verdict_violates_the_end_to_end_constraint(shared_atlas: Path) -> None:
    batches = windows(corpus_files(shared_atlas))
    enricher, registry = open_corpus_enricher()
    results_seen = us_claims = pairs = 0
    every = []
    for start in sorted(batches):
        results = window_results(start, batches[start], enricher, registry)
        every.extend(results)
        for result in results:
            results_seen += 1
            path, vantage = result.path, result.vantage
            if vantage is None:
                continue
            claimed = list(result.verdict.us_hops)
            if result.verdict.verdict == HOSTED_IN_US:
                claimed.append(result.verdict.destination)
            if not claimed:
                continue
            clean = clean_hops(path.hops, path.timeouts)
            diverges = first_divergence(path.hops)
            later = [(hop, address, path.slowest.get((hop, address), rtt))
                     for (hop, address), rtt in sorted(path.hops.items())
                     if rtt is not None and is_public(address)]
            need_ms = 2 * _us_distance_km(vantage) / 200.0
            for hop in claimed:
                k = hop.record.hop
                us_claims += 1
                if k not in clean:
                    continue
                for j, _address, slowest in later:
                    if k < j < diverges and j in clean:
                        pairs += 1
                        assert slowest >= need_ms, (path.measurement_id, path.probe_id,
                                                    path.timestamp, k, j, slowest, need_ms)
                assert end_to_end_refutation(
                    vantage, (k, hop.record.address), later, result.regions,
                    diverges_at=diverges, clean=clean) is None, (
                    path.measurement_id, path.probe_id, path.timestamp, k)
    figures = summary(every)
    # the corpus is what PROVENANCE.md says it is, and the property was really exercised
    assert results_seen > 100_000 and us_claims > 20_000 and pairs > 50_000
    assert figures["end_to_end_refutations"] > 100
    print(f"\n{results_seen} paths, {us_claims} US hops kept, {pairs} (US hop, later hop) "
          f"pairs checked; {figures}")
