"""The scheduler as it runs (APScheduler, collector thread) and the CLI, against the fake."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from grenswacht.cli import app
from scheduler.app import start_scheduler
from scheduler.settings import AtlasSettings
from schemas.bus import open_bus
from schemas.topics import HEADER_SOURCE, RESULTS
from tests.fakes.atlas import DEMO_KEY, FakeAtlas
from tests.fakes.atlas.server import wait_subscribed
from tests.scheduler.conftest import EXAMPLES

ONE_APP = """\
[[vantage_set]]
name = "nl"
kind = "atlas"
countries = ["NL"]
requested = 3

[measurements]
traceroute_protocols = ["TCP"]
address_families = [4]
dns_query_types = ["A"]

[[application]]
name = "TOPdesk"
hostnames = ["voorbeeldgemeente.topdesk.net"]
"""


def test_scheduler_creates_measurements_and_collects_their_results(
    fake_atlas: FakeAtlas, atlas_settings: AtlasSettings, bus_url: str, tmp_path: Path
) -> None:
    inventory = tmp_path / "apps.toml"
    inventory.write_text(ONE_APP)
    settings = atlas_settings.model_copy(update={"inventory": inventory})
    with open_bus(bus_url) as bus:
        handle = start_scheduler(settings, bus, tmp_path)
        try:
            deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
            while len(handle.state.measurements) < 2:
                assert time.monotonic() < deadline, "the scheduler created no measurements"
                time.sleep(0.05)
            ids = set(handle.state.measurements)
            assert len(ids) == 2  # a TCP/443 traceroute and a DNS A measurement
            assert wait_subscribed(fake_atlas, ids)
            for msm_id in ids:
                fake_atlas.state.release(msm_id, 4)
            while handle.collector.published < 8:
                assert time.monotonic() < deadline, f"{handle.collector.published} of 8 published"
                time.sleep(0.05)
            jobs = handle.scheduler.get_jobs()
        finally:
            handle.shutdown()
        assert handle.collector.published == 8
        bus.subscribe([RESULTS], "test")
        messages = bus.poll(100, timeout=1)
    assert len(messages) == 8
    assert {m.header(HEADER_SOURCE) for m in messages} == {b"atlas"}
    assert {json.loads(m.value)["msm_id"] for m in messages} == ids
    assert {j.id for j in jobs} == {"reconcile", "backfill"}
    assert all(j.coalesce and j.max_instances == 1 and j.trigger.jitter for j in jobs)


def test_plan_dry_run_prints_requests_and_credits() -> None:
    result = CliRunner().invoke(
        app, ["plan", "--dry-run", "--format", "json", "-i", str(EXAMPLES / "apps.toml")]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    posts = [r for r in doc["requests"] if r["method"] == "POST"]
    assert posts[0]["url"] == "https://atlas.ripe.net/api/v2/measurements/"
    assert sum(len(r["json"]["definitions"]) for r in posts) == 90
    # nl (5 probes): 2 critical hosts hourly, 2 high every 2 h, 2 normal every 4 h, 1 low
    # every 12 h; 4 traceroutes x 30 + 2 DNS x 10 = 140 credits per probe-round per host.
    nl = 5 * 140 * (2 * 24 + 2 * 12 + 2 * 6 + 1 * 2)
    # nl-overheid (2 ASNs x 2 probes), Zoom not included
    overheid = 4 * 140 * (2 * 24 + 2 * 12 + 2 * 6)
    # reference: 5 areas x 1 probe, ICMP v4+v6, every 6 h, 6 hosts
    reference = 5 * 2 * 30 * 4 * 6
    assert doc["credits_per_day"] == nl + overheid + reference == 114_440
    table = CliRunner().invoke(app, ["plan", "--dry-run", "-i", str(EXAMPLES / "apps.toml")])
    assert "credits per day: 114440 (budget 1000000)" in table.output
    assert "nothing was sent" in table.output


def test_plan_applies_and_then_keeps(fake_atlas: FakeAtlas, tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "grenswacht.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\n[atlas]\nbase_url = "{fake_atlas.base_url}"\n'
        f'ca_bundle = "{fake_atlas.ca_file}"\ninventory = "{EXAMPLES / "apps.csv"}"\n'
    )
    monkeypatch.setenv("GRENSWACHT_ATLAS__API_KEY", DEMO_KEY)
    first = CliRunner().invoke(app, ["plan", "--format", "json", "--config", str(config)])
    assert first.exit_code == 0, first.output
    created = [m for m in fake_atlas.state.measurements.values()]
    assert len(created) == 56
    second = CliRunner().invoke(app, ["plan", "--format", "json", "--config", str(config)])
    doc = json.loads(second.output)
    assert len(doc["keep"]) == 56 and doc["stop"] == [] and len(fake_atlas.state.measurements) == 56
    state = json.loads((tmp_path / "atlas-state.json").read_text())
    assert len(state["measurements"]) == 56


def test_inventory_check_command(tmp_path: Path) -> None:
    good = CliRunner().invoke(app, ["inventory", "check", str(EXAMPLES / "apps.toml")])
    assert good.exit_code == 0 and "12 applications, 4 vantage sets, 90 RIPE Atlas" in good.output
    bad = tmp_path / "apps.csv"
    bad.write_text("name,hostnames\nX,not a host\n")
    result = CliRunner().invoke(app, ["inventory", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:2: hostnames: 'not a host' is not a valid hostname" in result.output


def test_schedule_with_nothing_to_do_fails(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GRENSWACHT_ATLAS__API_KEY", raising=False)
    config = tmp_path / "grenswacht.toml"
    config.write_text("[atlas.probe_metadata]\nenabled = false\n")
    result = CliRunner().invoke(app, ["schedule", "--config", str(config)])
    assert result.exit_code == 2 and "nothing to schedule" in result.output
