"""Collection over the real stream protocol and REST, into the real chDB store: recorded
real results (msm 1033154, 87 traceroutes) arrive once, with no gap, bytes unchanged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from consumers.ingest import IngestConsumer
from consumers.storage import Storage
from scheduler.atlas import AtlasClient
from scheduler.collector import Collector, StateFile
from schemas.bus import open_bus
from tests.fakes.atlas import FakeAtlas, load_recorded
from tests.fakes.atlas.server import wait_subscribed

MSM = 1033154
RECORDED = load_recorded(MSM)


def _until(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    """Until ``condition`` holds; ``timeout`` is a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _stored(storage: Storage, bus_url: str) -> tuple[list[bytes], int]:
    """Ingest what the bus holds; return the stored payloads (FINAL) and the raw row count."""
    with open_bus(bus_url) as bus:
        IngestConsumer(bus, storage, flush_interval_s=0.05).drain()
    rows = storage.query(
        "SELECT payload FROM raw_results FINAL WHERE source = 'atlas' AND measurement_id = "
        "{m:UInt64}",
        {"m": MSM},
    ).rows
    total = storage.query("SELECT count() FROM raw_results", {}).rows[0][0]
    return sorted(row[0].encode() if isinstance(row[0], str) else row[0] for row in rows), total


def test_stream_delivers_recorded_results_into_clickhouse(
    fake_atlas: FakeAtlas, client: AtlasClient, bus_url: str, storage: Storage, tmp_path: Path
) -> None:
    fake_atlas.state.add_recorded(MSM, tags=("grenswacht",))
    with open_bus(bus_url) as bus:
        collector = Collector(client, bus, StateFile(tmp_path / "state.json"))
        collector.set_measurements([MSM])
        collector.connect()
        assert wait_subscribed(fake_atlas, {MSM})
        fake_atlas.state.release(MSM, 30)
        while collector.published < 30:
            collector.pump(0.2)
        collector.close()
    rest = [r for r in fake_atlas.state.requests if r.path.endswith("/results")]
    assert len(rest) == 1  # the backfill at connect; everything else came by stream
    payloads, total = _stored(storage, bus_url)
    assert payloads == sorted(RECORDED[:30])  # bytes exactly as recorded
    assert total == 30
    state = StateFile(tmp_path / "state.json").load()
    assert state.checkpoints == {
        MSM: max(int(r.split(b'"timestamp":')[1].split(b",")[0]) for r in RECORDED[:30])
    }


def test_disconnect_mid_measurement_is_backfilled_without_gap_or_duplicate(
    fake_atlas: FakeAtlas, client: AtlasClient, bus_url: str, storage: Storage, tmp_path: Path
) -> None:
    fake_atlas.state.add_recorded(MSM, tags=("grenswacht",))
    stop = threading.Event()
    with open_bus(bus_url) as bus:
        collector = Collector(client, bus, StateFile(tmp_path / "state.json"))
        collector.set_measurements([MSM])
        thread = threading.Thread(target=collector.run, args=(stop, 0.1))
        thread.start()
        try:
            assert wait_subscribed(fake_atlas, {MSM})
            fake_atlas.state.release(MSM, 20)
            _until(lambda: collector.published == 20)
            fake_atlas.drop_streams()  # the connection drops in the middle of the measurement
            _until(lambda: fake_atlas.stream_count == 0 or collector.disconnects > 0)
            fake_atlas.state.release(MSM, 40)  # produced while nobody listens
            _until(lambda: collector.disconnects == 1)
            assert wait_subscribed(fake_atlas, {MSM})
            _until(lambda: collector.published == 60)  # the gap, from REST
            fake_atlas.state.release(MSM)  # the rest, by stream again
            _until(lambda: collector.published == len(RECORDED))
        finally:
            stop.set()
            thread.join(120)
    assert not thread.is_alive(), "the collector did not stop"
    backfills = [r for r in fake_atlas.state.requests if r.path.endswith("/results")]
    assert len(backfills) == 2 and "start" in backfills[1].query
    assert collector.published == 87 and collector.repeats_skipped > 0
    payloads, total = _stored(storage, bus_url)
    assert payloads == sorted(RECORDED)  # no gap
    assert total == 87  # and nothing doubled, not even before FINAL


def test_restart_resumes_from_the_checkpoint(
    fake_atlas: FakeAtlas, client: AtlasClient, bus_url: str, storage: Storage, tmp_path: Path
) -> None:
    fake_atlas.state.add_recorded(MSM, tags=("grenswacht",))
    state_file = tmp_path / "state.json"
    fake_atlas.state.release(MSM, 45)
    with open_bus(bus_url) as bus:
        first = Collector(client, bus, StateFile(state_file), overlap_s=900)
        first.set_measurements([MSM])
        assert first.backfill() == 45
    fake_atlas.state.release(MSM)  # while the process is down
    with open_bus(bus_url) as bus:
        second = Collector(client, bus, StateFile(state_file).load(), overlap_s=900)
        second.set_measurements([MSM])
        republished = second.backfill()
    start = int(fake_atlas.state.requests[-1].query["start"])
    checkpoint = StateFile(state_file).load().checkpoints[MSM]
    assert start == first.state.checkpoints[MSM] - 900
    assert checkpoint == max(int(r.split(b'"timestamp":')[1].split(b",")[0]) for r in RECORDED)
    # the overlap window is sent again (at least once) ...
    assert republished > 87 - 45
    payloads, total = _stored(storage, bus_url)
    # ... and stored once
    assert payloads == sorted(RECORDED)
    assert total >= 87
