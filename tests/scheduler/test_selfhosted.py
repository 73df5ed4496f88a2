"""Self-hosted vantage sets: task series from the inventory, the tasks due per round, the
``probe-tasks`` job on the bus, and ``plan --dry-run`` showing them (no credits)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from grenswacht.cli import app
from scheduler import jobs
from scheduler.inventory import load_inventory
from scheduler.jsonstate import JsonState
from scheduler.selfhosted import due_tasks, wanted_task_series
from scheduler.settings import AtlasSettings
from schemas.bus import open_bus
from schemas.tasks import SELF_HOSTED_MSM_ID_MIN, SELF_HOSTED_MSM_ID_SPAN, ProbeTask
from schemas.topics import HEADER_SOURCE, PROBE_TASKS
from tests.scheduler.conftest import EXAMPLES

LAB = """\
[measurements]
address_families = [4, 6]
dns_query_types = ["A", "AAAA"]
paris = 4

[measurements.interval_s]
critical = 600
high = 1200
normal = 1800
low = 3600

[measurements.self_hosted]
traceroute_protocols = ["udp"]
mda_interval_s = 7200

[[vantage_set]]
name = "nl"
kind = "atlas"
countries = ["NL"]

[[vantage_set]]
name = "eigen"
kind = "self"
probes = ["vp-a", "vp-b"]

[[application]]
name = "Lab v4"
hostnames = ["10.99.255.1"]
criticality = "critical"
vantage_sets = ["eigen"]

[[application]]
name = "Lab both"
hostnames = ["10.99.255.1", "2001:db8:99:ffff::1", "www.gemeente.test"]
criticality = "low"
"""


def lab(tmp_path: Path) -> Path:
    path = tmp_path / "apps.toml"
    path.write_text(LAB)
    return path


def test_series_per_vantage_point_target_kind_and_family(tmp_path: Path) -> None:
    series = wanted_task_series(load_inventory(lab(tmp_path)))
    labels = sorted(s.label for s in series if s.vantage_point == "vp-a")
    assert labels == [
        "DNS A/AAAA www.gemeente.test from vp-a",  # IP literals are not resolved
        "UDP MDA v4 10.99.255.1 from vp-a",
        "UDP MDA v4 www.gemeente.test from vp-a",
        "UDP MDA v6 2001:db8:99:ffff::1 from vp-a",  # a literal only in its own family
        "UDP MDA v6 www.gemeente.test from vp-a",
        "UDP traceroute v4 10.99.255.1 from vp-a",
        "UDP traceroute v4 www.gemeente.test from vp-a",
        "UDP traceroute v6 2001:db8:99:ffff::1 from vp-a",
        "UDP traceroute v6 www.gemeente.test from vp-a",
    ]
    assert len(series) == 2 * len(labels)
    shared = next(s for s in series if s.label == "UDP traceroute v4 10.99.255.1 from vp-a")
    # measured once, at the higher criticality of the two applications that use it
    assert shared.applications == ("Lab both", "Lab v4") and shared.interval_s == 600
    assert next(s for s in series if s.kind == "mda").interval_s == 7200
    keys = [s.key for s in series]
    assert len(set(keys)) == len(keys)
    top = SELF_HOSTED_MSM_ID_MIN + SELF_HOSTED_MSM_ID_SPAN
    assert all(SELF_HOSTED_MSM_ID_MIN <= one.msm_id < top for one in series)
    # the same inventory gives the same keys and measurement ids (stable across restarts)
    assert keys == [s.key for s in wanted_task_series(load_inventory(lab(tmp_path)))]


def test_one_task_per_round_with_paris_rotation(tmp_path: Path) -> None:
    series = [s for s in wanted_task_series(load_inventory(lab(tmp_path)))
              if s.label == "UDP traceroute v4 10.99.255.1 from vp-a"]
    one = series[0]
    start = 1_700_000_000.0
    first = due_tasks(series, {}, start)
    assert [t.task_id for _, t in first.tasks] == [f"{one.key}-{one.round_at(start)}"]
    # within the same round nothing is due again; each later round is due once, and the
    # flow id rotates over the 4 Paris variations
    assert due_tasks(series, first.rounds, start + 1).tasks == []
    published, flows = dict(first.rounds), [first.tasks[0][1].paris_id]
    for step in range(1, 9):
        due = due_tasks(series, published, start + step * one.interval_s)
        assert len(due.tasks) == 1
        flows.append(due.tasks[0][1].paris_id)
        published = due.rounds
    assert sorted(set(flows)) == [0, 1, 2, 3]
    assert all(flows[i] != flows[i + 1] for i in range(len(flows) - 1))
    task = first.tasks[0][1]
    assert task.vantage_point == "vp-a" and task.msm_id == one.msm_id and task.options == {}
    assert ProbeTask.from_bytes(task.to_bytes()) == task


def test_options_stay_within_the_agent_defaults(tmp_path: Path) -> None:
    series = wanted_task_series(load_inventory(lab(tmp_path)))
    options = {s.kind: s.task(0).options for s in series}
    assert options == {"traceroute": {}, "mda": {"confidence": 0.95},
                       "dns": {"query_types": ["A", "AAAA"]}}


def test_job_publishes_due_tasks_once_per_round(tmp_path: Path, bus_url: str) -> None:
    settings = AtlasSettings(inventory=lab(tmp_path))
    state = JsonState(tmp_path / "probe-tasks-state.json")
    now = 1_700_000_000.0
    with open_bus(bus_url) as bus:
        assert jobs.publish_probe_tasks(settings, bus, state, now) == 18
        assert jobs.publish_probe_tasks(settings, bus, state, now + 5) == 0
        # a restarted scheduler reads the state and does not repeat the round
        again = JsonState(state.path).load()
        assert jobs.publish_probe_tasks(settings, bus, again, now + 10) == 0
        # an hour later: every traceroute and DNS series again (600 s..3600 s intervals);
        # MDA (7200 s) only where its phase put a round boundary in between
        later = jobs.publish_probe_tasks(settings, bus, again, now + 3600)
        assert 10 <= later <= 18
        reader = open_bus(bus_url)
        reader.subscribe([PROBE_TASKS], "test")
        messages = []
        while batch := reader.poll(timeout=0.2):
            messages += batch
        reader.close()
    assert len(messages) == 18 + later
    tasks = [ProbeTask.from_bytes(m.value) for m in messages]
    assert {m.key for m in messages} == {b"vp-a", b"vp-b"}
    assert all(m.key == t.vantage_point.encode() for m, t in zip(messages, tasks, strict=True))
    assert all(m.header(HEADER_SOURCE) == b"scheduler" for m in messages)
    assert len({t.task_id for t in tasks}) == len(tasks)


def test_plan_dry_run_shows_the_self_hosted_tasks_without_credits(tmp_path: Path) -> None:
    config = tmp_path / "grenswacht.toml"
    config.write_text(f'[atlas]\ninventory = "{lab(tmp_path)}"\n')
    result = CliRunner().invoke(app, ["plan", "--dry-run", "--config", str(config),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert len(doc["probe_tasks"]) == 18
    assert all(t["credits"] == 0 for t in doc["probe_tasks"])
    first = doc["probe_tasks"][0]
    assert first["example"]["vantage_point"] == first["vantage_point"]
    # the Atlas part of the plan is unchanged: the self-hosted set costs nothing
    atlas_only = AtlasSettings(inventory=lab(tmp_path))
    assert doc["credits_per_day"] == jobs.plan_for(atlas_only).credits_per_day(atlas_only)
    table = CliRunner().invoke(app, ["plan", "--dry-run", "--config", str(config)])
    assert "Self-hosted probe tasks" in table.output
    assert "self-hosted probe task series: 18 (no credits)" in table.output


def test_example_inventory_plans_its_self_hosted_set() -> None:
    inventory = load_inventory(EXAMPLES / "apps.toml")
    series = wanted_task_series(inventory)
    assert {s.vantage_point for s in series} == {"vp-den-haag-1", "vp-zwolle-1"}
    # Zoom is measured from the "nl" Atlas set only
    assert not any(s.target == "zoom.us" for s in series)
    # the bundled example data's applications (measure = false) get no probe tasks
    unmeasured = {h for a in inventory.applications if not a.measure for h in a.hostnames}
    assert unmeasured and not any(s.target in unmeasured for s in series)


def test_a_task_past_its_round_is_skipped_by_the_agent(tmp_path: Path, bus_url: str) -> None:
    from probes.agent import Agent
    from probes.settings import ProbeSettings

    series = wanted_task_series(load_inventory(lab(tmp_path)))
    one = next(s for s in series if s.vantage_point == "vp-a" and s.kind == "traceroute")
    now = 1_700_000_000.0
    task = one.task(one.round_at(now))
    assert task.not_after is not None and now < task.not_after <= now + one.interval_s
    assert not task.expired(now) and task.expired(task.not_after + 1)
    with open_bus(bus_url) as bus:
        bus.publish(PROBE_TASKS, task.to_bytes(), key=b"vp-a")  # a round of 2023: stale
        bus.flush()
        agent = Agent(ProbeSettings(name="vp-a"), open_bus(bus_url))
        agent.start()
        try:
            for _ in range(100):  # bounded: the task is on the bus already
                agent.poll_once(timeout=0.3)
                if agent.health()["tasks_received"]:
                    break
        finally:
            agent.close()
            agent.bus.close()
    health = agent.health()
    assert health["tasks_received"] == 1 and health["tasks_expired"] == 1
    assert health["tasks_done"] == 0 and health["results_published"] == 0
