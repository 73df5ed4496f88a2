"""Probe metadata, automatically: results name probes -> the scheduler fetches them from the
(loopback) probe API in batches -> vantage-points topic -> stored in vantage_points with the
fetch date -> the registry places the probes. Against recorded real probe API pages."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from consumers.enrich.vantage import VantageRegistry, atlas_probes_from_api
from consumers.storage import Storage
from consumers.vantage_points import VantagePointConsumer, refresh_registry
from scheduler.app import start_scheduler
from scheduler.atlas import open_atlas
from scheduler.jsonstate import JsonState
from scheduler.probe_metadata import ProbeMetadataFetcher
from scheduler.settings import AtlasSettings, ProbeMetadataSettings
from schemas.bus import Message, open_bus
from schemas.errors import AtlasRateLimited
from schemas.topics import RESULTS, VANTAGE_POINTS
from schemas.vantage import AtlasProbeMetadata
from tests.fakes.atlas import FakeAtlas
from tests.fakes.atlas.state import load_recorded, recorded_probes

WEEK = 7 * 86400


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def result_messages(raws: list[bytes]) -> list[Message]:
    return [Message(RESULTS, 0, i, None, raw) for i, raw in enumerate(raws)]


@pytest.fixture()
def keyless(atlas_settings: AtlasSettings) -> AtlasSettings:
    """The probe API needs no key: none is configured."""
    return atlas_settings.model_copy(update={"api_key": None})


def drain(bus_url: str, topic: str) -> list[Message]:
    reader = open_bus(bus_url)
    reader.subscribe([topic], "test-drain")
    out = []
    while batch := reader.poll(timeout=0.2):
        out += batch
    reader.close()
    return out


def test_fetches_every_probe_results_name_in_batches(
    fake_atlas: FakeAtlas, keyless: AtlasSettings, bus_url: str, tmp_path: Path,
    storage: Storage,
) -> None:
    raws = load_recorded(1033154)  # 87 real traceroutes to Wikipedia, Oct 2013
    named = {int(p["id"]) for p in recorded_probes()} & {
        int(r.split(b'"prb_id":')[1].split(b",")[0]) for r in raws}
    clock = Clock()
    settings = ProbeMetadataSettings(batch_size=40)
    with open_bus(bus_url) as bus:
        fetcher = ProbeMetadataFetcher(open_atlas(keyless), bus,
                                       JsonState(tmp_path / "probes.json"), settings, clock=clock)
        # a self-hosted probe id and an id the API does not know are noted correctly
        extra = [b'{"prb_id": 10000123, "msm_id": 1}', b'{"prb_id": 999999, "msm_id": 1}']
        assert fetcher.observe(result_messages(raws + extra)) == len(named) + 1
        assert fetcher.fetch() == len(named) + 1
        assert fetcher.fetch() == 0  # nothing due until the refresh
        messages = drain(bus_url, VANTAGE_POINTS)
    searches = [r for r in fake_atlas.state.requests if r.path == "/api/v2/probes/"]
    assert len(searches) == -(-(len(named) + 1) // 40)  # ceil: batches of 40 ids
    assert all(not r.authorized for r in searches)
    records = [AtlasProbeMetadata.from_bytes(m.value) for m in messages]
    assert {r.probe_id for r in records if r.found} == named
    assert [r.probe_id for r in records if not r.found] == [999999]
    # stored with the fetch date; the registry then places every probe exactly as the
    # recorded probe API page does
    consumer = VantagePointConsumer(open_bus(bus_url), storage, group="test-vantage")
    while consumer.poll_once(timeout=0.2):
        pass
    consumer.bus.close()
    assert consumer.stats.stored == len(named) and consumer.stats.dead_letters == 0
    fetched = storage.query(
        "SELECT DISTINCT fetched_at FROM vantage_points FINAL WHERE fetched_at IS NOT NULL").rows
    assert [row[0].replace(tzinfo=dt.UTC) for row in fetched] == [
        dt.datetime.fromtimestamp(clock.now, dt.UTC)]
    registry = VantageRegistry()
    assert refresh_registry(registry, storage) == len(named)
    expected = atlas_probes_from_api({"results": recorded_probes()})
    for probe in named:
        assert registry.resolve(probe) == expected[probe]
        assert registry.fetched_at[f"atlas:{probe}"] is not None


def test_refreshed_weekly_when_seen_again(
    fake_atlas: FakeAtlas, keyless: AtlasSettings, bus_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    state = JsonState(tmp_path / "probes.json")
    raw = [load_recorded(1033154)[0]]
    with open_bus(bus_url) as bus:
        fetcher = ProbeMetadataFetcher(open_atlas(keyless), bus, state,
                                       ProbeMetadataSettings(), clock=clock)
        fetcher.observe(result_messages(raw))
        assert fetcher.fetch() == 1
        clock.now += WEEK - 60
        fetcher.observe(result_messages(raw))
        assert fetcher.due() == []  # fresh for a week
        clock.now += 120
        assert len(fetcher.due()) == 1  # a week old and seen since: fetched again
        # a restarted scheduler knows what it fetched when
        again = ProbeMetadataFetcher(open_atlas(keyless), bus, JsonState(state.path).load(),
                                     ProbeMetadataSettings(), clock=clock)
        assert again.due() == fetcher.due()
        assert again.fetch() == 1


def test_offline_keeps_the_probes_due(
    keyless: AtlasSettings, bus_url: str, tmp_path: Path, fake_atlas: FakeAtlas
) -> None:
    fake_atlas.state.fail_next(503, count=10)
    offline = keyless.model_copy(update={"max_retries": 0})
    with open_bus(bus_url) as bus:
        fetcher = ProbeMetadataFetcher(open_atlas(offline), bus, JsonState(tmp_path / "p.json"),
                                       ProbeMetadataSettings())
        fetcher.observe(result_messages(load_recorded(1033154)[:3]))
        due = fetcher.due()
        with pytest.raises(AtlasRateLimited):
            fetcher.fetch()
        assert fetcher.due() == due and len(due) == 3


def test_scheduler_and_consumer_end_to_end(
    fake_atlas: FakeAtlas, keyless: AtlasSettings, bus_url: str, tmp_path: Path,
    storage: Storage,
) -> None:
    """Results published on the bus -> the scheduler's inbox -> probe API -> stored."""
    settings = keyless.model_copy(update={
        "inventory": None, "probe_metadata": ProbeMetadataSettings(interval_s=1)})
    raws = load_recorded(1071935)  # real DNS results of probes with recorded metadata
    probes = {int(r.split(b'"prb_id":')[1].split(b",")[0]) for r in raws}
    buses = [open_bus(bus_url) for _ in range(3)]
    handle = start_scheduler(settings, buses[0], tmp_path, inbox_bus=buses[1])
    consumer = VantagePointConsumer(buses[2], storage, group="test-vantage-e2e")
    try:
        assert [j.id for j in handle.scheduler.get_jobs()] == ["probe-metadata"]
        for raw in raws:
            buses[0].publish(RESULTS, raw)
        buses[0].flush()
        deadline = time.monotonic() + 300  # a hang guard; asserted right after the loop
        stored: set[int] = set()
        while stored != probes and time.monotonic() < deadline:
            consumer.poll_once(timeout=0.2)
            stored = {int(k.removeprefix("atlas:")) for (k,) in storage.query(
                "SELECT vantage_key FROM vantage_points FINAL").rows}
        assert stored == probes
        assert handle.status()["probe_metadata"]["probes_fetched"] == len(probes)
    finally:
        handle.shutdown()
        for bus in buses:
            bus.close()
