"""Hop and path verdicts on real RIPE Atlas traceroutes with real probe metadata."""

from __future__ import annotations

from collections import Counter

from consumers.enrich import Enricher, HopRecord, VantageRegistry
from consumers.enrich.vantage import Vantage
from consumers.enrich.window import paths_from_rows, verdicts_for_paths
from consumers.verdicts import HOSTED_IN_US, ROUTED_VIA_US, US_OPERATED_IN_EU
from schemas.normalize import normalize
from tests.enrich.conftest import read_results

WIKIPEDIA = "pierky_msm1033154_wikipedia_esams.jsonl"
FACEBOOK = "pierky_msm3082698_facebook.jsonl"


def _rows(name: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for result in read_results(name):
        rows.extend(normalize(result).as_dicts("traceroute_hops"))
    return rows


def test_a_database_us_claim_contradicted_by_physics_is_a_correction(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    enricher, registry = enricher_and_registry
    # probe 3161 is in the Netherlands (probe API geometry); Wikimedia's esams address
    # answered it in 2.4 ms, but GeoLite2 places 91.198.174.225 in the US
    vantage = registry.resolve(3161)
    assert vantage is not None and vantage.country == "NL" and vantage.confidence == "high"
    claims = enricher.claims("91.198.174.225")
    assert [c.country for c in claims] == ["US"]
    path = next(p for p in paths_from_rows(_rows(WIKIPEDIA)) if p.probe_id == 3161)
    rtt = path.hops[max(path.hops)]
    verdict = enricher.hop_verdict(HopRecord("91.198.174.225", rtt, vantage, 5, True))
    assert verdict.physical.us_possible is False
    assert verdict.physical.country != "US"
    assert len(verdict.physical.corrections) == 1
    assert "not in the US" in verdict.physical.corrections[0]
    assert verdict.physical.bound is not None and verdict.physical.bound.bound_km < 300


def test_us_claim_without_a_vantage_position_is_kept_with_low_confidence(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    enricher, _ = enricher_and_registry
    verdict = enricher.hop_verdict(HopRecord("91.198.174.225", 2.4, None))
    assert verdict.physical.country == "US" and verdict.physical.confidence == "low"
    assert verdict.physical.us_possible is None


def test_no_hop_is_us_when_physics_forbids_it_on_the_fixtures(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    enricher, registry = enricher_and_registry
    checked = corrected = 0
    for name in (WIKIPEDIA, FACEBOOK, "ripe_atlas_tools_tests.jsonl", "sagan_tests.jsonl",
                 "reticle_tests.jsonl"):
        for result in verdicts_for_paths(paths_from_rows(_rows(name)), enricher, registry):
            for hop in result.hops:
                bound = hop.physical.bound
                if bound is not None:
                    checked += 1
                    if not bound.us_possible:
                        assert not hop.physical.is_us, hop.as_dict()
                corrected += bool(hop.physical.corrections)
    assert checked > 500 and corrected > 50


def test_fixture_application_classes(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    enricher, registry = enricher_and_registry
    wikipedia = verdicts_for_paths(paths_from_rows(_rows(WIKIPEDIA)), enricher, registry)
    classes = Counter(r.verdict.verdict for r in wikipedia)
    # Wikimedia's Amsterdam site: physics moves it out of the US, and its operator is the
    # US Wikimedia Foundation -> US-operated in the EU, never "hosted in the US"
    assert classes[US_OPERATED_IN_EU] > 30 and classes[HOSTED_IN_US] == 0
    # from Toronto the same Amsterdam site is reached through the US
    toronto = [r for r in wikipedia if r.vantage is not None and r.vantage.country == "CA"]
    assert [r.verdict.verdict for r in toronto] == [ROUTED_VIA_US]
    facebook = verdicts_for_paths(paths_from_rows(_rows(FACEBOOK)), enricher, registry)
    assert {r.verdict.verdict for r in facebook} == {HOSTED_IN_US}  # 66.220.156.68, >100 ms
    tools = verdicts_for_paths(paths_from_rows(_rows("ripe_atlas_tools_tests.jsonl")),
                               enricher, registry)
    # two US probes (geo lookup of their public address) crossing Comcast/Level3/HE
    assert {r.verdict.verdict for r in tools} == {ROUTED_VIA_US}
    assert all(r.vantage is not None and r.vantage.confidence == "low" for r in tools)


def test_vantage_from_self_hosted_configuration_wins() -> None:
    registry = VantageRegistry().add_self_hosted("ams-1", 52.37, 4.90, "NL")
    vantage = registry.resolve(10_000_001, "ams-1", "198.51.100.1")
    assert isinstance(vantage, Vantage) and vantage.uncertainty_km == 1.0
    assert registry.resolve(10_000_002, "unknown-vp") is None


def test_an_anycast_destination_is_placed_by_each_vantage_points_own_rtt(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    """What if 91.198.174.225 were anycast: no vantage point's proof stands in for another's
    (they reach different sites); each path places it by its own disc, and carries the flag."""
    enricher, registry = enricher_and_registry
    paths = paths_from_rows(_rows(WIKIPEDIA))
    unicast = verdicts_for_paths(paths, enricher, registry)
    anycast = verdicts_for_paths(paths, enricher, registry, frozenset({"91.198.174.225"}))
    dutch = {r.path.probe_id: r for r in unicast if r.vantage and r.vantage.country == "NL"}
    placed = {r.path.probe_id: r for r in anycast if r.vantage and r.vantage.country == "NL"}
    assert all(r.verdict.anycast for r in anycast) and not any(r.verdict.anycast
                                                                 for r in unicast)
    # as unicast, probe 3161's 2.4 ms reply places it for every Dutch probe
    assert {r.verdict.destination.physical.country for r in dutch.values()} == {"NL"}
    for probe, result in placed.items():
        destination = result.verdict.destination
        own = destination.physical.bound
        if own is None:  # the destination did not answer this probe: nothing places it
            assert not destination.physical.country
            continue
        assert destination.record.vantage == result.vantage
        reach = own.bound_km + result.vantage.uncertainty_km
        assert (destination.physical.country == "NL") == (reach <= 300), probe
        assert "anycast" in destination.physical.note
    assert sum(1 for r in placed.values() if not r.verdict.destination.physical.country) >= 9
