"""Change detection on real RIPE Atlas sequences, and the rules on their own."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from consumers.alerts import AlertSettings, ChangeDetector
from consumers.alerts.state import (
    ApplicationInfo,
    Applications,
    Observation,
    StateKey,
    observations,
)
from consumers.enrich import Enricher, VantageRegistry
from consumers.enrich.physics import KM_PER_MS_RTT
from consumers.home import VerdictSettings
from consumers.pipeline import AnalysisContext
from schemas.alerts import FIRING, RESOLVED, Alert
from tests.alerts import replay

Pair = tuple[Enricher, VantageRegistry]


def run(pair: Pair, results: list[dict[str, Any]], settings: AlertSettings | None = None,
        home: VerdictSettings | None = None) -> list[Alert]:
    """The results through the analysis pipeline (one pass per hourly window), the published
    path verdicts through the change detector, as ``grenswacht run`` does."""
    cfg = settings or AlertSettings()
    context = AnalysisContext(*pair, verdicts=home or VerdictSettings())
    detector = ChangeDetector(cfg)
    events: list[Alert] = []
    for paths in replay.published_paths(results, context):
        for observation in observations(paths, Applications(), cfg.granularity,
                                        transit_legal=cfg.transit_legal):
            events.extend(detector.feed(observation))
    return events


def test_the_detour_fixture_is_what_the_builder_makes() -> None:
    assert replay.DETOUR_FILE.read_text() == replay.dumps(replay.detour_sequence())


def test_wikipedia_rounds_with_rotating_paris_id_raise_no_alert(
        enricher_and_registry: Pair) -> None:
    results = replay.load(replay.WIKIPEDIA)
    sequence = [r for round_ in replay.rounds(results, 20) for r in round_]
    assert len({r.get("paris_id") for r in sequence}) == 16
    assert run(enricher_and_registry, sequence) == []


@pytest.mark.parametrize("name", ["GoogleNews", "Reuters", "FolhaSP"])
def test_real_atlas_sequences_with_load_balancers_raise_no_alert(
        enricher_and_registry: Pair, shared_atlas: Path, name: str) -> None:
    """24 real rounds of 29 probes with rotating paris_id: the paths differ from round to
    round (load balancers) but the baseline learned over one Paris cycle covers them."""
    path = shared_atlas / "bulk" / "news_sites_cdn_2024" / f"traceroute_{name}.jsonl.gz"
    results = sorted((json.loads(line) for line in gzip.open(path)),
                     key=lambda r: r["timestamp"])
    every = VerdictSettings(home_countries=["*"])  # every probe watched, keyed by country
    assert run(enricher_and_registry, results, home=every) == []
    # without learning a Paris cycle the same data does alert: the damping is real
    noisy = run(enricher_and_registry, results, home=every, settings=AlertSettings(
        learn_results=1, granularity="country"))
    assert noisy, "the detector sees the branches it must not alert on"


def test_a_detour_through_the_us_gives_exactly_one_alert_that_resolves(
        enricher_and_registry: Pair) -> None:
    events = run(enricher_and_registry, replay.detour_sequence())
    assert [e.state for e in events] == [FIRING, RESOLVED]
    firing, resolved = events
    assert firing.alert_id == resolved.alert_id and resolved.version == firing.version + 1
    assert firing.application == "wikipedia-lb.esams.wikimedia.org"
    assert (firing.vantage_set, firing.address_family) == ("nl", 4)
    assert "US" not in firing.before.physical and "US" in firing.after.physical
    assert firing.before.verdict == "us_operated_in_eu"
    assert firing.after.verdict == "routed_via_us"
    assert firing.confirmation.vantage_points == 2
    us = [e for e in firing.evidence if e.change == "physical:US"]
    assert {e.vantage_point for e in us} == {"atlas:3161", "atlas:12081"}
    for item in us:
        # the hop is in the US by a source AND physics allows it
        assert item.physical_country == "US" and item.address == "4.69.144.143"
        assert item.rtt_ms is not None and item.us_distance_km is not None
        assert item.rtt_ms * KM_PER_MS_RTT >= item.us_distance_km
        assert any(": US" in source for source in item.sources)
    detour_rounds = {r["timestamp"] for r in replay.detour_sequence()
                     if any(h.get("result", [{}])[0].get("from") == "4.69.144.143"
                            for h in r["result"])}
    assert firing.first_seen.timestamp() == min(detour_rounds)
    assert resolved.resolved_at is not None
    assert resolved.resolved_at.timestamp() > max(detour_rounds)


# -- the rules, on observations ----------------------------------------------------------
KEY = StateKey("TOPdesk", "nl", 4)
APP = ApplicationInfo("TOPdesk", ("Utrecht",), "high")
BASE = frozenset({"physical:EU", "legal:EU", "verdict:eu_hosted_eu_operated"})
VIA_CH = BASE | {"physical:CH", "legal:CH"}
VIA_US = BASE | {"physical:US", "legal:US", "verdict:routed_via_us"}


def obs(t: float, atoms: frozenset[str], vp: str = "atlas:1", flow: int = 0) -> Observation:
    return Observation(KEY, APP, f"{vp}|1|topdesk.example", vp, flow, t, atoms)


def feed_all(detector: ChangeDetector, items: list[Observation]) -> list[Alert]:
    return [alert for item in items for alert in detector.feed(item)]


def test_remapping_between_known_branches_and_paris_rotation_never_alert() -> None:
    detector = ChangeDetector(AlertSettings(learn_results=4, granularity="country"))
    # per-flow load balancer: flows 0/1 go via CH, 2/3 do not; learned in the first cycle
    items = [obs(900.0 * i, VIA_CH if i % 4 < 2 else BASE, flow=i % 4) for i in range(40)]
    assert feed_all(detector, items) == []


def test_new_branch_into_new_jurisdiction_alerts_and_return_resolves() -> None:
    cfg = AlertSettings(learn_results=4, hold_down_s=1800, resolve_rounds=2)
    detector = ChangeDetector(cfg)
    items = [obs(900.0 * i, BASE, flow=i % 16) for i in range(8)]
    assert feed_all(detector, items) == []
    # one sighting is not enough: one flow, one vantage point, one result
    assert feed_all(detector, [obs(900.0 * 8, VIA_US, flow=8)]) == []
    # a second flow id of the same series confirms it
    (opened,) = feed_all(detector, [obs(900.0 * 9, VIA_US, flow=9)])
    assert opened.state == FIRING and opened.severity == "high"
    assert opened.added == ["legal:US", "physical:US", "verdict:routed_via_us"]
    assert opened.municipalities == ["Utrecht"]
    # back to the previous state: resolves after 2 clean results and the hold-down
    assert feed_all(detector, [obs(900.0 * 10, BASE, flow=10)]) == []
    (resolved,) = feed_all(detector, [obs(900.0 * 11, BASE, flow=11)])
    assert resolved.state == RESOLVED and resolved.alert_id == opened.alert_id


def test_a_single_sighting_is_forgotten() -> None:
    detector = ChangeDetector(AlertSettings(learn_results=2, confirm_window_s=3600))
    items = [obs(900.0 * i, BASE, flow=i) for i in range(3)]
    items += [obs(2700.0, VIA_US, vp="atlas:2", flow=5)]  # learning series atlas:2 ...
    items += [obs(900.0 * i, BASE, flow=i) for i in range(4, 20)]
    items += [obs(20000.0, VIA_US, flow=3)]
    items += [obs(20000.0 + 900 * i, BASE, flow=4 + i) for i in range(1, 20)]
    items += [obs(50000.0, VIA_US, flow=7)]
    assert feed_all(detector, items) == []


def test_flapping_is_damped_by_the_hold_down() -> None:
    cfg = AlertSettings(learn_results=2, hold_down_s=3 * 900, resolve_rounds=2)
    detector = ChangeDetector(cfg)
    items = [obs(900.0 * i, BASE, vp=vp) for i in range(2) for vp in ("atlas:1", "atlas:2")]
    # the detour comes and goes every other round, seen by both probes
    for i in range(2, 22):
        atoms = VIA_US if i % 2 == 0 else BASE
        items += [obs(900.0 * i, atoms, vp="atlas:1"), obs(900.0 * i + 5, atoms, vp="atlas:2")]
    events = feed_all(detector, items)
    assert [e.state for e in events] == [FIRING]
    # stable again for the hold-down: one resolution
    tail = [obs(900.0 * i + d, BASE, vp=vp) for i in range(22, 25)
            for d, vp in ((0, "atlas:1"), (5, "atlas:2"))]
    events = feed_all(detector, tail)
    assert [e.state for e in events] == [RESOLVED]
    # it comes back right after: the same alert re-opens (flaps + 1), no new alert id
    (again,) = feed_all(detector, [obs(900.0 * 25, VIA_US, vp="atlas:1"),
                                   obs(900.0 * 25 + 5, VIA_US, vp="atlas:2")])
    assert again.state == FIRING and again.flaps == 1
    assert again.alert_id == events[0].alert_id and again.version == events[0].version + 1


def test_state_survives_a_restart_and_replays_are_ignored() -> None:
    cfg = AlertSettings(learn_results=2)
    items = [obs(900.0 * i, BASE, vp=vp) for i in range(3) for vp in ("atlas:1", "atlas:2")]
    items += [obs(2700.0, VIA_US, vp="atlas:1"), obs(2705.0, VIA_US, vp="atlas:2")]
    first = ChangeDetector(cfg)
    feed_all(first, items[:-1])
    restarted = ChangeDetector(cfg)
    restarted.load_key(KEY, json.loads(json.dumps(first.dump_key(KEY))))
    # the whole batch comes again after the restart: old results are ignored
    events = feed_all(restarted, items)
    assert [e.state for e in events] == [FIRING]
    assert feed_all(restarted, items) == []


def test_a_jurisdiction_that_disappears_alerts_once_and_becomes_the_baseline() -> None:
    cfg = AlertSettings(learn_results=4, hold_down_s=1800, resolve_rounds=2)
    detector = ChangeDetector(cfg)
    # learned: the route goes via Switzerland; then it does not any more, for good
    items = [obs(900.0 * i, VIA_CH, flow=i % 16) for i in range(4)]
    items += [obs(900.0 * i, BASE, flow=i % 16) for i in range(4, 30)]
    events = feed_all(detector, items)
    assert [e.state for e in events] == [FIRING, RESOLVED]
    gone, settled = events
    assert gone.removed == ["legal:CH", "physical:CH"] and gone.added == []
    assert "CH" in gone.before.physical and "CH" not in gone.after.physical
    assert "no longer seen: legal:CH, physical:CH" in gone.summary
    # not before a full Paris cycle (learn_results results) without it, and the hold-down
    assert gone.first_seen.timestamp() >= 900.0 * (4 + 4 - 1)
    assert settled.alert_id == gone.alert_id and "baseline now" in settled.summary
    # it is the baseline now: the same state again raises nothing
    assert feed_all(detector, [obs(900.0 * i, BASE, flow=i % 16) for i in range(30, 60)]) == []


def test_a_disappearance_is_not_reported_when_it_is_off_or_its_series_went_silent() -> None:
    quiet = ChangeDetector(AlertSettings(learn_results=4, alert_on_disappearance=False))
    items = [obs(900.0 * i, VIA_CH, flow=i) for i in range(4)]
    items += [obs(900.0 * i, BASE, flow=i) for i in range(4, 30)]
    assert feed_all(quiet, items) == []
    # the only probe that saw CH goes silent; another probe never saw it: nothing gone
    detector = ChangeDetector(AlertSettings(learn_results=4, stale_series_s=3600))
    items = [obs(900.0 * i, VIA_CH, vp="atlas:1", flow=i) for i in range(4)]
    items += [obs(900.0 * i + 5, BASE, vp="atlas:2", flow=i) for i in range(40)]
    assert feed_all(detector, items) == []
