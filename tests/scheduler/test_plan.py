"""Planning: credit figures computed by hand, limits, packing and reconciliation."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.atlas import create_body
from scheduler.inventory import load_inventory
from scheduler.plan import make_plan, wanted_measurements
from scheduler.settings import AtlasSettings

SMALL = """\
[measurements.interval_s]
critical = 3600
high = 7200
normal = 14400
low = 43200

[[vantage_set]]
name = "nl"
kind = "atlas"
countries = ["NL"]
requested = 5

[[vantage_set]]
name = "reference"
kind = "atlas"
purpose = "reference"
areas = ["West", "North-Central", "South-Central", "North-East", "South-East"]
requested = 1

[[application]]
name = "Microsoft 365"
hostnames = ["outlook.office365.com"]
criticality = "critical"

[[application]]
name = "Ook Outlook"
hostnames = ["outlook.office365.com"]
criticality = "low"
"""


@pytest.fixture()
def small(tmp_path: Path) -> Path:
    path = tmp_path / "apps.toml"
    path.write_text(SMALL)
    return path


def test_credit_figures(small: Path) -> None:
    settings = AtlasSettings()
    plan = make_plan(load_inventory(small), settings)
    # nl: 5 probes, hourly (critical wins over low): 24 results/probe/day
    #   traceroutes ICMP+TCP x v4+v6 = 4 x 5 x 24 x 30 = 14,400
    #   DNS A+AAAA (v4 resolvers)    = 2 x 5 x 24 x 10 =  2,400
    # reference: 5 areas x 1 probe, ICMP v4+v6 every 6 h: 2 x 5 x 4 x 30 = 1,200
    assert len(plan.selected) == 8
    assert plan.credits_per_day(settings) == 14_400 + 2_400 + 1_200
    assert plan.oneoff_credits(settings) == 0
    # a shared hostname is measured once, for both applications
    assert all(s.applications == ("Microsoft 365", "Ook Outlook") for s in plan.selected)


def test_oneoff_costs_double(small: Path) -> None:
    path = small.with_name("oneoff.toml")
    path.write_text("[measurements]\noneoff = true\n" + SMALL.split("\n", 6)[6])
    settings = AtlasSettings()
    plan = make_plan(load_inventory(path), settings)
    # traceroutes 4 x 5 x 60, DNS 2 x 5 x 20, reference 2 x 5 x 60
    assert plan.oneoff_credits(settings) == 1_200 + 200 + 600
    assert plan.credits_per_day(settings) == 0
    assert all(r.body["is_oneoff"] is True for r in plan.requests)
    assert all("interval" not in d for r in plan.requests for d in r.body["definitions"])


def test_budget_and_concurrency_limits_skip_the_least_critical(small: Path) -> None:
    inventory = load_inventory(small)
    plan = make_plan(inventory, AtlasSettings(daily_credit_budget=16_800))
    assert len(plan.selected) == 6 and {s.vantage_set for s in plan.selected} == {"nl"}
    assert [why for _, why in plan.skipped] == ["over the daily credit budget (600 credits)"] * 2
    plan = make_plan(inventory, AtlasSettings(max_concurrent_measurements=3))
    assert len(plan.selected) == 3
    assert plan.skipped[0][1] == "over the limit of 3 concurrent measurements"


def test_requests_are_packed_by_probe_selection(small: Path) -> None:
    settings = AtlasSettings(definitions_per_request=10)
    plan = make_plan(load_inventory(small), settings, build_body=create_body)
    posts = [r for r in plan.requests if r.method == "POST"]
    # nl v4 (2 traceroutes + 2 DNS), nl v6 (2 traceroutes), reference v4, reference v6
    assert [len(r.body["definitions"]) for r in posts] == [4, 2, 1, 1]
    first = posts[0].body
    assert first["probes"] == [
        {
            "type": "country",
            "value": "NL",
            "requested": 5,
            "tags": {"include": ["system-ipv4-works"]},
        }
    ]
    assert first["is_oneoff"] is False
    tcp = next(d for d in first["definitions"] if d.get("protocol") == "TCP")
    key = next(s.key for s in plan.selected if s.variant == "TCP" and s.address_family == 4)
    assert tcp == {
        "type": "traceroute",
        "af": 4,
        "target": "outlook.office365.com",
        "protocol": "TCP",
        "port": 443,
        "paris": 16,
        "resolve_on_probe": True,
        "interval": 3600,
        "description": "grenswacht: TCP traceroute v4 outlook.office365.com from nl",
        "tags": ["grenswacht", key],
    }
    dns = next(d for d in first["definitions"] if d.get("query_type") == "AAAA")
    assert dns["use_probe_resolver"] is True and dns["query_argument"] == "outlook.office365.com"
    assert "target" not in dns


def test_reconcile_keeps_creates_and_stops(small: Path) -> None:
    inventory = load_inventory(small)
    settings = AtlasSettings()
    specs = wanted_measurements(inventory)
    running = {"id": 100, "status": {"id": 2}, "tags": ["grenswacht", specs[0].key]}
    twin = {"id": 101, "status": {"id": 1}, "tags": ["grenswacht", specs[0].key]}
    stale = {"id": 102, "status": {"id": 2}, "tags": ["grenswacht", "gw-0000000000"]}
    stopped = {"id": 103, "status": {"id": 4}, "tags": ["grenswacht", specs[1].key]}
    plan = make_plan(inventory, settings, [running, twin, stale, stopped])
    assert plan.keep == {100: specs[0]}
    assert plan.stop == [(101, "duplicate of 100"), (102, "no longer wanted")]
    assert plan.create == specs[1:]
    assert [(r.method, r.path) for r in plan.requests[:2]] == [
        ("DELETE", "/api/v2/measurements/101"),
        ("DELETE", "/api/v2/measurements/102"),
    ]


def test_example_inventory_fits_the_atlas_limits() -> None:
    from tests.scheduler.conftest import EXAMPLES

    settings = AtlasSettings()
    inventory = load_inventory(EXAMPLES / "apps.toml")
    plan = make_plan(inventory, settings)
    assert not plan.skipped
    # the applications of the bundled example data (measure = false) cost nothing
    unmeasured = {a.name for a in inventory.applications if not a.measure}
    assert unmeasured and not any(set(s.applications) & unmeasured for s in plan.selected)
    assert {a.name for a in inventory.applications if a.measure} == {
        name for s in plan.selected for name in s.applications}
    assert len(plan.selected) <= 100
    assert plan.credits_per_day(settings) == sum(
        s.probes * 86400 // (s.interval_s or 1) * (30 if s.kind == "traceroute" else 10)
        for s in plan.selected
    )
