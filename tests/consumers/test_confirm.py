"""Which US claims call for confirmation pings, on real traceroutes (bundled fixtures) with
the real offline geo data and the recorded probe positions."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from consumers.confirm import (
    AMSTERDAM,
    ConfirmationTracker,
    HopObservation,
    confirmation_requests,
)
from consumers.enrich import HopRecord, JurisdictionSettings, open_enricher
from consumers.enrich.geo import is_public
from consumers.graph.us_transit import EUROPE
from schemas.bus import open_bus
from schemas.confirm import ConfirmationRequest
from schemas.topics import CONFIRM_REQUESTS

ATLAS = Path(__file__).resolve().parents[1] / "fixtures" / "atlas"
NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def observations() -> list[HopObservation]:
    enricher, registry = open_enricher(JurisdictionSettings(
        atlas_probe_files=sorted((ATLAS / "api").glob("pierky_*_probes_api_v2.json"))))
    out = []
    for path in sorted((ATLAS / "traceroute").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            result = json.loads(line)
            vantage = registry.resolve(int(result.get("prb_id", 0)))
            for hop in result.get("result") or []:
                best: dict[str, float] = {}
                for reply in hop.get("result") or []:
                    if "from" in reply and "rtt" in reply:
                        best[reply["from"]] = min(best.get(reply["from"], 1e9), reply["rtt"])
                for address, rtt in best.items():
                    verdict = enricher.hop_verdict(HopRecord(address, rtt, vantage, hop["hop"]))
                    out.append(HopObservation(verdict, f"{path.name}:{result['msm_id']}/"
                                              f"{result['prb_id']}/{hop['hop']}"))
    return out


def test_only_us_claims_physics_allows_one_per_address(
    observations: list[HopObservation],
) -> None:
    requests = confirmation_requests(observations, now=NOW, limit=1000)
    assert requests, "the bundled traceroutes hold US claims physics allows"
    by_address = {o.verdict.record.address: o for o in observations}
    assert len({r.address for r in requests}) == len(requests)
    for request in requests:
        assert request.claimed_country == "US" and is_public(request.address)
        candidates = [o for o in observations if o.verdict.record.address == request.address]
        # no vantage point's RTT rules the US out already
        assert all(o.verdict.physical.us_possible is not False for o in candidates)
        assert any(o.verdict.physical.country == "US" for o in candidates)
        # the tightest bound of that address is the one reported
        rtts = [o.verdict.record.rtt_ms for o in candidates
                if o.verdict.physical.us_possible is True]
        assert request.rtt_ms == min(r for r in rtts if r is not None)
        assert request.alternative_country in EUROPE
        assert request.evidence and request.vantage_key.startswith("atlas:")
        assert request.probe_id == int(request.vantage_key.removeprefix("atlas:"))
        assert by_address[request.address].verdict.physical.sources
    assert [r.rtt_ms for r in requests] == sorted(r.rtt_ms or 0 for r in requests)
    # a US claim that physics refutes is never sent for confirmation
    refuted = {o.verdict.record.address for o in observations
               if o.verdict.physical.us_possible is False}
    assert not refuted & {r.address for r in requests}


def test_alternative_is_the_vantage_point_in_europe_else_the_default(
    observations: list[HopObservation],
) -> None:
    for request in confirmation_requests(observations, now=NOW, limit=1000):
        seen_from = next(o.verdict.record.vantage for o in observations
                         if o.verdict.record.address == request.address
                         and o.verdict.record.rtt_ms == request.rtt_ms)
        assert seen_from is not None
        if seen_from.country in EUROPE:
            assert (request.alternative_latitude, request.alternative_longitude) == (
                seen_from.latitude, seen_from.longitude)
        else:
            assert (request.alternative_latitude, request.alternative_longitude,
                    request.alternative_country) == AMSTERDAM


def test_cooldown_limit_and_anycast(observations: list[HopObservation]) -> None:
    every = confirmation_requests(observations, now=NOW, limit=1000)
    first = every[0].address
    later = confirmation_requests(observations, now=NOW + 60, recent={first: NOW}, limit=1000)
    assert first not in {r.address for r in later} and len(later) == len(every) - 1
    assert len(confirmation_requests(observations, now=NOW, limit=2)) == min(2, len(every))
    again = confirmation_requests(observations, now=NOW, anycast=frozenset({first}), limit=1000)
    assert first not in {r.address for r in again}


def test_tracker_publishes_each_address_once_per_cooldown(
    observations: list[HopObservation],
) -> None:
    url = f"memory://confirm-{uuid.uuid4().hex}"
    with open_bus(url) as bus:
        tracker = ConfirmationTracker(bus, limit=1000)
        sent = tracker.offer(observations, now=NOW)
        assert tracker.offer(observations, now=NOW + 3600) == []
        reader = open_bus(url)
        reader.subscribe([CONFIRM_REQUESTS], "test")
        messages = reader.poll(max_records=10_000, timeout=0.5)
        reader.close()
    received = [ConfirmationRequest.from_bytes(m.value) for m in messages]
    assert sorted(received, key=lambda r: r.address) == sorted(sent, key=lambda r: r.address)
    assert all(m.key == r.address.encode() for m, r in zip(messages, received, strict=True))
