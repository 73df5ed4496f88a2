"""Physics across replies on real results: constraint-based geolocation across vantage
points, the end-to-end constraint, physics-only location and pings as observations.

The traceroutes are copied from ../shared/data/atlas/bulk into tests/fixtures/atlas/physics
(every result of the same file in the same hourly window, see PROVENANCE.md); those probes
have no metadata here, so their position is their country's shape (a geo lookup of their
public address), as in the pipeline.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.enrich import Enricher, VantageRegistry
from consumers.enrich.constraints import (
    Observation,
    Regions,
    end_to_end_refutation,
)
from consumers.enrich.countries import us_codes
from consumers.enrich.physics import great_circle_km, us_bound, vantage_us_distance_km
from consumers.enrich.vantage import Vantage
from consumers.enrich.window import (
    PathResult,
    paths_from_rows,
    ping_observations,
    verdicts_for_paths,
)
from consumers.verdicts import ELSEWHERE, ROUTED_VIA_US
from schemas.normalize import normalize
from tests.enrich.conftest import ATLAS

PHYSICS = ATLAS / "physics"


def _results(name: str) -> Iterator[dict[str, object]]:
    path = PHYSICS / name if (PHYSICS / name).exists() else ATLAS / name
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def _window(name: str, enricher: Enricher, registry: VantageRegistry) -> list[PathResult]:
    rows = [row for result in _results(name)
            for row in normalize(result).as_dicts("traceroute_hops")]
    return verdicts_for_paths(paths_from_rows(rows), enricher, registry)


def _of(results: list[PathResult], probe: int) -> PathResult:
    return next(r for r in results if r.path.probe_id == probe)


def test_a_nearby_vantage_point_bounds_the_address_on_every_path(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    """msm 23938718 (Kuwait): probe 27166 reached 94.187.151.2 in 98 ms, which allows the
    France that GeoLite2 claims; probe 3055 reached it in 3.1 ms, which does not."""
    enricher, registry = enricher_and_registry
    results = _window("menog_kw_msm23938718_cbg.jsonl", enricher, registry)
    far, near = _of(results, 27166), _of(results, 3055)
    (alone,) = verdicts_for_paths([far.path], enricher, registry)
    assert alone.verdict.destination.physical.country == "FR"  # its own disc allows FR
    for result in (far, near):
        physical = result.verdict.destination.physical
        assert physical.country != "FR" and physical.bloc == "elsewhere"
        assert physical.basis == "physics" and "KW" in physical.candidates
        assert any("atlas:3055" in c and "not in FR" in c for c in physical.corrections)
        assert result.verdict.verdict == ELSEWHERE
    assert {o.vantage.key for o in far.verdict.destination.physical.region.observations} == {
        "atlas:3055", "atlas:27166"}


def test_a_later_reply_refutes_a_us_backbone_hop(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    """msm 79033209 probe 11813 (Great Britain): Google's backbone router 142.250.162.12 at
    hop 6 (67.7 ms, GeoLite2: US) is followed by the destination, every reply within
    10.6 ms. Out to the US and back takes at least twice the distance to the US."""
    enricher, registry = enricher_and_registry
    result = _of(_window("googlenews_msm79033209_gb.jsonl", enricher, registry), 11813)
    vantage = result.vantage
    assert vantage is not None and vantage.area == "GB"
    hop = next(h for h in result.hops if h.record.address == "142.250.162.12")
    assert us_bound(hop.record.rtt_ms or 0.0, vantage).us_possible  # alone it could be
    assert not hop.physical.is_us and hop.physical.refutation is not None
    refutation = hop.physical.refutation
    assert (refutation.later_hop, refutation.later_address) == (10, "172.217.169.78")
    assert refutation.later_rtt_ms == max(
        r["rtt"] for h in next(x for x in _results("googlenews_msm79033209_gb.jsonl")
                               if x["prb_id"] == 11813)["result"]  # type: ignore[index]
        if h["hop"] == 10 for r in h["result"] if "rtt" in r)
    assert refutation.required_ms == pytest.approx(2 * vantage_us_distance_km(vantage) / 200,
                                                   abs=0.01)
    assert refutation.later_rtt_ms < refutation.required_ms
    assert result.verdict.verdict != ROUTED_VIA_US and not result.verdict.us_hops
    assert result.verdict.refutations[0]["later_address"] == "172.217.169.78"
    assert "end_to_end" in json.dumps(result.verdict.as_dict())


def test_a_route_that_sometimes_crosses_a_tunnel_to_the_us_stays_routed_via_the_us(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    """msm 23939525 probe 13914 (UAE): hops 3-7 are Hurricane Electric in the US (100-187
    ms); one of the destination's three replies came back in 16 ms (another path: reply TTL
    53 instead of 59), the others in 201-202 ms. The largest RTT counts."""
    enricher, registry = enricher_and_registry
    results = _window("menog_ae_msm23939525_tunnel.jsonl", enricher, registry)
    result = next(r for r in results if r.path.measurement_id == 23939525
                  and r.path.probe_id == 13914 and r.path.timestamp == 1582566684)
    fastest = result.path.hops[(14, "81.22.16.158")]
    assert fastest is not None and fastest < 20 and result.path.slowest[(14, "81.22.16.158")] > 200
    assert result.verdict.verdict == ROUTED_VIA_US
    assert {h.record.hop for h in result.verdict.us_hops} >= {3, 4, 5, 6, 7}


@pytest.mark.parametrize(("name", "probe", "country"), [
    # CloudFront edge 65.9.136.68 that GeoLite2 places in the US, answering a probe in New
    # Zealand in 9.5 ms; Google 0.6 ms from a probe in Japan
    ("cloudfront_nz_au_msm64653379.jsonl", 1002364, "NZ"),
    ("googlenews_msm79033209_jp.jsonl", 1001877, "JP"),
])
def test_physics_alone_places_what_the_database_gets_wrong(
    enricher_and_registry: tuple[Enricher, VantageRegistry], name: str, probe: int,
    country: str,
) -> None:
    enricher, registry = enricher_and_registry
    result = _of(_window(name, enricher, registry), probe)
    physical = result.verdict.destination.physical
    assert [c.country for c in physical.sources] == ["US"] and physical.corrections
    assert physical.basis == "physics" and physical.bloc == "elsewhere"
    assert country in physical.candidates and not set(physical.candidates) & us_codes()
    assert result.verdict.verdict == ELSEWHERE  # was "unknown": no source gave a country


def test_end_to_end_with_a_bounded_later_hop_madrid_london() -> None:
    """The issue's case, with real coordinates: a probe in Madrid, the destination a VM in
    London (a London probe reaches it in 1 ms) answering Madrid in 42.8 ms, a hop at 50.7 ms
    that a database puts in the US. Madrid -> US -> London -> Madrid is ~55 ms with exact
    positions; with the London disc (110 km) and the bounds' slack the bound is ~54 ms."""
    madrid = Vantage("atlas:madrid", 40.4168, -3.7038, 10.0, "ES", "test", "high")
    london = Vantage("atlas:london", 51.5074, -0.1278, 10.0, "GB", "test", "high")
    vm, hop = "192.0.2.10", "192.0.2.20"
    regions = Regions([Observation(vm, madrid, 42.8), Observation(vm, london, 1.0),
                       Observation(hop, madrid, 50.7)])
    assert us_bound(50.7, madrid).us_possible  # the hop's own RTT allows the US
    triangle = end_to_end_refutation(madrid, (5, hop), [(9, vm, 42.8)])
    bounded = end_to_end_refutation(madrid, (5, hop), [(9, vm, 42.8)], regions)
    assert triangle is not None and bounded is not None
    assert bounded.required_ms > triangle.required_ms >= 49.0
    # Madrid -> Maine -> London -> Madrid by hand, less the bounds' slack and the discs
    by_hand = (great_circle_km(40.4168, -3.7038, 47.07, -67.79)
               + great_circle_km(47.07, -67.79, 51.5074, -0.1278)
               + great_circle_km(51.5074, -0.1278, 40.4168, -3.7038)) / 200
    assert by_hand - 2.5 < bounded.required_ms <= by_hand
    assert bounded.required_ms > 53.5 > 42.8
    assert "end to end" in bounded.sentence()


def test_pings_are_observations_and_confirm_a_us_location(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    enricher, registry = enricher_and_registry
    # real pings (msm 3359986): five probes with metadata to 193.170.114.242
    rows = [row for result in _results("ping/pierky_msm3359986_anchor_selftest.jsonl")
            for row in normalize(result).as_dicts("ping_results")]
    observations = ping_observations(rows, registry)
    assert len(observations) == 5 and {o.address for o in observations} == {"193.170.114.242"}
    region = Regions(observations).region("193.170.114.242")
    assert region is not None and region.us_distance_km() > 3000  # 14.3 ms from Berlin
    assert min(o.rtt_ms for o in region.observations) == pytest.approx(14.31932)
    # a confirmation ping (the scheduler's, from probe 11891 in New York) to a Hurricane
    # Electric router that GeoLite2 places in the US: 1.9 ms proves it
    confirming = ping_observations([{
        "measurement_id": 1, "probe_id": 11891, "vantage_point": "", "source_address": "",
        "destination_address": "184.105.64.201", "rtt_min_ms": 1.9}], registry)
    hop = enricher.hop_verdict(_record("184.105.64.201", registry),
                               Regions(confirming).region("184.105.64.201"))
    assert hop.physical.is_us and hop.physical.basis == "physics"
    assert hop.physical.confidence == "high" and set(hop.physical.candidates) <= us_codes()
    # the same router 3 ms from a probe in London would be a correction instead
    refuting = ping_observations([{
        "measurement_id": 2, "probe_id": 10616, "vantage_point": "", "source_address": "",
        "destination_address": "184.105.64.201", "rtt_min_ms": 3.0}], registry)
    hop = enricher.hop_verdict(_record("184.105.64.201", registry),
                               Regions(refuting).region("184.105.64.201"))
    assert not hop.physical.is_us and "atlas:10616" in hop.physical.corrections[0]


def _record(address: str, registry: VantageRegistry):  # type: ignore[no-untyped-def]
    from consumers.enrich.hops import HopRecord
    return HopRecord(address, None, registry.resolve(11891), 3)


def test_probe_positions_known_only_by_country(tmp_path: Path) -> None:
    registry = VantageRegistry()
    assert registry.resolve(1) is None
    nz = Vantage("x", -41.0, 173.0, 1574.0, "NZ", "geo lookup", "low", "NZ")
    # anywhere in New Zealand (the Kermadecs included): American Samoa is ~1,800 km away
    assert 1700 < vantage_us_distance_km(nz) < 1810


def test_a_refuted_us_claim_is_never_put_back_in_the_us_by_the_vantage_points_country(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    """A hop refuted end to end on another path of the window, seen here 1.9 ms from probe
    11891 in New York: "near the vantage point" must not place it in the US again."""
    from consumers.enrich.constraints import Refutation
    from consumers.enrich.hops import physical_verdict

    enricher, registry = enricher_and_registry
    new_york = registry.resolve(11891)
    assert new_york is not None and new_york.country == "US"
    claims = enricher.claims("184.105.64.201")
    assert [c.country for c in claims] == ["US"]
    elsewhere = Refutation(3, "184.105.64.201", 4, "185.1.8.50", 1.2, 82.4, 8243.0, 0.0, 0.0,
                           "atlas:51488", "traceroute 1/51488 at 0")
    physical = physical_verdict(claims, 1.9, new_york, refuted_us=elsewhere)
    assert not physical.is_us and physical.us_possible is False
    assert physical.corrections and "end to end on traceroute 1/51488" in physical.corrections[0]
