"""Confirmation pings against the loopback RIPE Atlas: probes near the claimed US location
and near the European alternative (radius searches over the recorded real probes), the
daily credit budget, the cool-down, ``plan --dry-run``, and end to end: a request on the
bus -> a created one-off ping -> its results collected -> ``ping_results`` rows."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from typer.testing import CliRunner

from consumers.ingest import IngestConsumer
from consumers.storage import Storage
from grenswacht.cli import app
from scheduler.app import start_scheduler
from scheduler.atlas import create_body, open_atlas
from scheduler.confirm import Confirmer, dry_run_entries
from scheduler.jsonstate import JsonState
from scheduler.settings import AtlasSettings, ConfirmSettings, ProbeMetadataSettings
from schemas.bus import Message, open_bus
from schemas.confirm import ConfirmationRequest
from schemas.topics import CONFIRM_REQUESTS, DEAD_LETTERS
from tests.fakes.atlas import FakeAtlas
from tests.fakes.atlas.server import wait_subscribed
from tests.fakes.atlas.state import recorded_probes

# 213.200.67.177 (a GTT backbone address) answered in 3.5 ms a probe in Toronto on a real
# traceroute (tests/fixtures/atlas/traceroute/pierky_msm1033154_wikipedia_esams.jsonl); the
# offline geo data says US. Claimed location: Ashburn, VA; alternative: Amsterdam.
REQUEST = ConfirmationRequest(
    address="213.200.67.177", claimed_latitude=39.04, claimed_longitude=-77.49,
    claim_source="geoip2fast", alternative_country="NL", alternative_latitude=52.37,
    alternative_longitude=4.90, vantage_key="atlas:4553", probe_id=4553, rtt_ms=3.52,
    evidence="hop_verdicts:atlas/1033154/4553/1381825008/5", requested_at=1_700_000_000.0,
)


def messages(*requests: ConfirmationRequest | bytes) -> list[Message]:
    return [Message(CONFIRM_REQUESTS, 0, i, None,
                    r if isinstance(r, bytes) else r.to_bytes())
            for i, r in enumerate(requests)]


def distance_km(probe: dict, lat: float, lon: float) -> float:
    import math

    p_lon, p_lat = (math.radians(c) for c in probe["geometry"]["coordinates"])
    c_lat, c_lon = math.radians(lat), math.radians(lon)
    cos = (math.sin(p_lat) * math.sin(c_lat)
           + math.cos(p_lat) * math.cos(c_lat) * math.cos(p_lon - c_lon))
    return 6371.0 * math.acos(min(1.0, cos))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_probes_near_both_places_within_the_budget(
    fake_atlas: FakeAtlas, atlas_settings: AtlasSettings, tmp_path: Path
) -> None:
    settings = atlas_settings.model_copy(update={"confirm": ConfirmSettings(daily_credits=40)})
    clock = Clock()
    created: list[int] = []
    dead_url = f"memory://dead-{uuid.uuid4().hex}"
    dead = open_bus(dead_url)
    confirmer = Confirmer(open_atlas(settings), settings, JsonState(tmp_path / "c.json"),
                          on_created=created.append, dead_letters=dead, clock=clock)
    second = REQUEST.model_copy(update={"address": "141.136.99.242"})
    assert confirmer.enqueue(messages(REQUEST, REQUEST, second, b'{"address": "x"}')) == 2
    assert confirmer.invalid == 1
    dead.subscribe([DEAD_LETTERS], "test")
    (letter,) = dead.poll(timeout=0.5)
    dead.close()
    record = json.loads(letter.value)
    assert record["reason"] == "invalid_confirmation_request" and record["offset"] == 3
    assert record["payload"] == '{"address": "x"}' and "address" in record["detail"]
    ids = confirmer.run()
    # 6 probes x 3 credits x 2 (one-off) = 36 credits: the second request waits for tomorrow
    assert ids == created and len(ids) == 1 and confirmer.status()["queued"] == 1
    assert confirmer.spent_today(clock.now) == 36
    create = [r for r in fake_atlas.state.requests if r.method == "POST"][-1]
    definition = create.body["definitions"][0]
    assert definition["type"] == "ping" and definition["target"] == REQUEST.address
    assert create.body["is_oneoff"] is True and "gw-confirm" in definition["tags"]
    chosen = [int(p) for p in create.body["probes"][0]["value"].split(",")]
    probes = {p["id"]: p for p in recorded_probes()}
    near_us = sorted(chosen, key=lambda p: distance_km(probes[p], 39.04, -77.49))[:3]
    near_eu = sorted(chosen, key=lambda p: distance_km(probes[p], 52.37, 4.90))[:3]
    assert {probes[p]["country_code"] for p in near_us} == {"US"}
    assert all(distance_km(probes[p], 52.37, 4.90) < 200 for p in near_eu)
    assert all(probes[p]["status"]["id"] == 1 for p in chosen)  # connected probes only
    searches = [r.query["radius"] for r in fake_atlas.state.requests
                if r.path == "/api/v2/probes/"]
    assert searches[0].startswith("39.0400,-77.4900:") and "52.3700,4.9000:200" in searches
    # the next UTC day the second one goes; the first is not pinged again (cool-down)
    clock.now += 86400
    assert confirmer.enqueue(messages(REQUEST)) == 0
    assert len(confirmer.run()) == 1 and confirmer.status()["queued"] == 0


def test_dry_run_shows_the_queued_requests_and_their_credits(
    atlas_settings: AtlasSettings, tmp_path: Path, fake_atlas: FakeAtlas
) -> None:
    state = JsonState(tmp_path / "data" / "atlas-confirm.json")
    confirmer = Confirmer(open_atlas(atlas_settings), atlas_settings, state)
    confirmer.enqueue(messages(REQUEST))
    entries = dry_run_entries(state, atlas_settings, create_body)
    assert entries[0]["credits"] == 36 and entries[0]["body"] is None
    assert [s["params"]["radius"] for s in entries[0]["searches"]] == [
        "39.0400,-77.4900:200", "52.3700,4.9000:200"]
    # once the probes are chosen, the exact create request is shown
    state.data["queue"][0]["probes"] = confirmer.choose_probes(REQUEST)
    state.save()
    config = tmp_path / "grenswacht.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[atlas]\n'
                      f'base_url = "{atlas_settings.base_url}"\n')
    before = len(fake_atlas.state.requests)
    result = CliRunner().invoke(app, ["plan", "--dry-run", "--config", str(config),
                                      "-i", str(Path(__file__).parents[2] / "examples" /
                                                "apps.toml"), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert len(fake_atlas.state.requests) == before  # nothing was sent
    (entry,) = doc["confirmations"]
    assert entry["credits"] == 36 and doc["confirm_credits"] == 36
    (post,) = entry["requests"]
    assert post["method"] == "POST" and post["json"]["definitions"][0]["type"] == "ping"
    assert post["json"]["is_oneoff"] is True
    table = CliRunner().invoke(app, ["plan", "--dry-run", "--config", str(config),
                                     "-i", str(Path(__file__).parents[2] / "examples" /
                                               "apps.toml")])
    assert "confirmation ping: is 213.200.67.177 in US? 6 probes" in table.output


def test_a_request_on_the_bus_ends_as_stored_ping_rows(
    fake_atlas: FakeAtlas, atlas_settings: AtlasSettings, bus_url: str, tmp_path: Path,
    storage: Storage,
) -> None:
    settings = atlas_settings.model_copy(update={
        "inventory": None,
        "probe_metadata": ProbeMetadataSettings(enabled=False),
        "confirm": ConfirmSettings(interval_s=1),
    })
    buses = [open_bus(bus_url) for _ in range(3)]
    ingest = IngestConsumer(buses[2], storage, group="test-ingest-confirm", flush_interval_s=0.2)
    stop = threading.Event()
    consumer = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    consumer.start()
    handle = start_scheduler(settings, buses[0], tmp_path, reconcile=False, inbox_bus=buses[1])
    try:
        assert sorted(j.id for j in handle.scheduler.get_jobs()) == ["backfill", "confirm"]
        buses[0].publish(CONFIRM_REQUESTS, REQUEST.to_bytes(), key=REQUEST.address.encode())
        buses[0].flush()
        deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
        while not fake_atlas.state.measurements:
            assert time.monotonic() < deadline, "no confirmation measurement was created"
            time.sleep(0.05)
        (msm_id,) = fake_atlas.state.measurements
        assert wait_subscribed(fake_atlas, {msm_id})
        released = fake_atlas.state.release(msm_id)
        assert len(released) == 6
        rows: list = []
        while len(rows) < 6:
            assert time.monotonic() < deadline, f"{len(rows)} of 6 ping rows stored"
            rows = storage.query(
                "SELECT probe_id, destination_address, packets_received, rtt_min_ms "
                "FROM ping_results FINAL WHERE measurement_id = {m:UInt64}", {"m": msm_id}).rows
            time.sleep(0.1)
    finally:
        handle.shutdown()
        stop.set()
        consumer.join(120)
        for bus in buses:
            bus.close()
    assert not consumer.is_alive(), "the ingest consumer did not stop"
    chosen = handle.confirmer.sent[REQUEST.address]["probes"]
    assert sorted(r[0] for r in rows) == sorted(chosen["claim"] + chosen["alternative"])
    assert {r[1] for r in rows} == {REQUEST.address}
    assert all(r[2] > 0 and r[3] is not None for r in rows)
    assert handle.status()["confirm"]["credits_today"] == 36
