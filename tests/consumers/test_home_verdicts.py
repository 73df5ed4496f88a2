"""The application verdict on real RIPE Atlas results, from the municipality's vantage points
(issue 14's done-when): home sets, the current state over a period, ingest -> apps without
``run``, findings after ingest, and one alert whose before/after are what ``apps`` shows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.alerts import AlertsComponent, AlertSettings
from consumers.analysis import AnalysisLoop, analyse_windows, unanalysed_windows
from consumers.current import ApplicationState, current_applications
from consumers.enrich import Enricher, JurisdictionSettings, VantageRegistry, open_enricher
from consumers.home import VerdictSettings
from consumers.ingest import IngestConsumer
from consumers.pipeline import AnalysisContext
from consumers.storage import Storage
from consumers.verdicts import US_CLASSES
from grenswacht.cli import app as cli_app
from grenswacht.files import read_results
from schemas import topics
from schemas.bus import open_bus
from tests.alerts import replay
from tests.enrich.conftest import PROBE_FILES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WIKIPEDIA = FIXTURES / "atlas" / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl"
FACEBOOK = FIXTURES / "atlas" / "traceroute" / "pierky_msm3082698_facebook.jsonl"
GOOGLE_NEWS = FIXTURES / "verdicts" / "googlenews_nl_us.jsonl.gz"
APPS = {
    "Wikipedia": ["wikipedia-lb.esams.wikimedia.org"],
    "Google News": ["news.google.com"],
    "Facebook": ["66.220.156.68"],  # msm 3082698 targeted the address
}
Pair = tuple[Enricher, VantageRegistry]
_COUNTER = iter(range(1_000_000))


@pytest.fixture(scope="module")
def enricher_and_registry() -> Pair:
    return open_enricher(JurisdictionSettings(atlas_probe_files=PROBE_FILES))


def ingest(storage: Storage, results: Iterable[bytes]) -> set[int]:
    """Store results (the real ingest consumer); the hourly windows they fall into."""
    name = f"memory://home-verdicts-{next(_COUNTER)}"
    bus = open_bus(name)
    windows = set()
    for value in results:
        result = orjson.loads(value)
        windows.add(result["timestamp"] // 3600 * 3600)
        bus.publish(topics.RESULTS, value, key=topics.result_key(result))
    bus.flush()
    IngestConsumer(open_bus(name), storage, group="ingest").drain(idle_timeout=0)
    return windows


def file_results(path: Path) -> list[bytes]:
    return [record.value for record in read_results(path)]


def state(storage: Storage, application: str) -> ApplicationState:
    (found,) = [s for s in current_applications(storage) if s.application == application]
    return found


def analyse(storage: Storage, pair: Pair, windows: Iterable[int], **home: Any) -> None:
    context = AnalysisContext(*pair, APPS, VerdictSettings(**home))
    stats = analyse_windows(storage, None, context, windows)
    assert stats.failing == {}


def test_a_us_operator_in_an_eu_datacentre_by_home_set(storage: Storage,
                                                      enricher_and_registry: Pair) -> None:
    """Wikimedia's Amsterdam site (US Wikimedia Foundation): US-operated in the EU for the
    Dutch probes; from Toronto the same site is reached through the US. Google News (a US
    provider serving each place from nearby): hosted in the US for the US probes, not in
    the US for the Dutch ones."""
    windows = ingest(storage, file_results(WIKIPEDIA) + file_results(GOOGLE_NEWS))
    analyse(storage, enricher_and_registry, windows)  # default: home = NL
    wikipedia = state(storage, "Wikipedia")
    assert (wikipedia.verdict, wikipedia.shares) == ("us_operated_in_eu",
                                                     {"us_operated_in_eu": 1.0})
    assert wikipedia.home_sets == ("nl",) and wikipedia.paths == len(wikipedia.vantage_points)
    assert "US-operated" in wikipedia.why and "provably not in the US" in wikipedia.why
    dutch_news = state(storage, "Google News")
    assert dutch_news.measured and dutch_news.verdict not in US_CLASSES
    assert dutch_news.home_sets == ("nl",) and len(dutch_news.vantage_points) == 3
    dutch_paths = storage.query(
        "SELECT count(), countIf(position(why, 'provably not in the US') > 0) FROM "
        "path_verdicts FINAL WHERE home_set = 'nl' AND has(applications, 'Google News')"
    ).rows[0]
    assert dutch_paths[0] == dutch_paths[1] > 40  # every Dutch path: provably not in the US
    # (where no source names a country the path stays unknown: the bloc by physics is the
    # constraint-based geolocation's job, docs/jurisdiction.md)
    # the same stored results, with the US (Canada) probes as the home set
    analyse(storage, enricher_and_registry, windows, home_countries=["US"])
    us_news = state(storage, "Google News")
    assert us_news.verdict == "hosted_in_us" and us_news.home_sets == ("us",)
    assert us_news.shares == {"hosted_in_us": 1.0} and len(us_news.vantage_points) == 3
    analyse(storage, enricher_and_registry, windows, home_countries=["CA"])
    assert state(storage, "Wikipedia").verdict == "routed_via_us"


def test_windows_without_home_measurements_change_nothing(storage: Storage,
                                                         enricher_and_registry: Pair) -> None:
    windows = ingest(storage, file_results(WIKIPEDIA))
    analyse(storage, enricher_and_registry, windows)
    before = state(storage, "Wikipedia")
    rows = storage.query("SELECT count() FROM application_verdicts FINAL").rows
    # one window of the file only has a probe outside the Netherlands: no row for it
    assert len(windows) == 2 and rows == [(1,)]
    # later windows measure other things (Facebook from Italy), or nothing at all
    later = ingest(storage, file_results(FACEBOOK))
    empty = max(later) + 7 * 3600
    analyse(storage, enricher_and_registry, [*later, empty])
    assert state(storage, "Wikipedia") == before
    assert storage.query("SELECT count() FROM application_verdicts FINAL").rows == rows
    # Facebook was measured from Italy only: no home path, no verdict
    assert "Facebook" not in {s.application for s in current_applications(storage)}
    assert storage.query("SELECT count() FROM path_verdicts FINAL WHERE "
                         "has(applications, 'Facebook')").rows[0][0] == 8


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_ingest_then_apps_and_findings_without_run(
        storage: Storage, chdb_dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = tmp_path / "apps.toml"
    inventory.write_text('[[application]]\nname = "Wikipedia"\n'
                         'hostnames = ["wikipedia-lb.esams.wikimedia.org"]\n'
                         'municipalities = ["Utrecht"]\n'
                         # traced by probes outside the Netherlands only (msm 3082698)
                         '[[application]]\nname = "Facebook"\nhostnames = ["66.220.156.68"]\n')
    monkeypatch.setenv("GRENSWACHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GRENSWACHT_ATLAS__INVENTORY", str(inventory))
    monkeypatch.setenv("GRENSWACHT_JURISDICTION__ATLAS_PROBE_FILES",
                       json.dumps([str(p) for p in PROBE_FILES]))
    monkeypatch.setenv("COLUMNS", "250")
    shown = _cli("ingest", str(WIKIPEDIA), str(FACEBOOK), "--storage", chdb_dsn)
    assert "windows analysed" in shown.output
    row, facebook = orjson.loads(_cli("apps", "--storage", chdb_dsn, "-f", "json").output)
    assert facebook["application"] == "Facebook" and facebook["verdict"] == "not_measured"
    assert facebook["coverage"] == "not_home"  # its paths exist, none from home: and says so
    assert "outside its home set" in facebook["why"]
    assert {k: row[k] for k in ("application", "verdict", "shares")} == {
        "application": "Wikipedia", "verdict": "us_operated_in_eu",
        "shares": {"us_operated_in_eu": 1.0}}
    assert row["paths"] == 13 and len(row["vantage_points"]) == 13 and row["reasons"]
    assert row["municipalities"] == ["Utrecht"] and row["confidence"] in ("low", "medium")
    table = _cli("apps", "--storage", chdb_dsn, "--municipality", "Utrecht").output
    assert "Wikipedia" in table and "us_operated_in_eu" in table and "Utrecht: " in table
    paths = orjson.loads(_cli("verdicts", "--storage", chdb_dsn, "-f", "json").output)
    assert len(paths) == 13 and {p["home_set"] for p in paths} == {"nl"}
    listed = orjson.loads(_cli("findings", "--storage", chdb_dsn, "-f", "json").output)
    assert {"anycast", "load_balancer"} <= {f["kind"] for f in listed}
    # `grenswacht run` over the same stored results finds exactly the same
    for table_name in ("findings", "path_verdicts", "hop_verdicts", "application_verdicts"):
        storage.command(f"TRUNCATE TABLE {table_name}")
    from grenswacht.embedded import analysis_context
    from grenswacht.settings import load_settings

    loop = AnalysisLoop(storage, open_bus("memory://home-verdicts-run"),
                        analysis_context(load_settings(), storage))
    assert loop.catch_up() >= 2
    loop.process_settled(0.0, force=True)
    ran = orjson.loads(_cli("findings", "--storage", chdb_dsn, "-f", "json").output)
    assert sorted(f["finding_id"] for f in ran) == sorted(f["finding_id"] for f in listed)
    assert unanalysed_windows(storage, 3600) == []


def test_a_replayed_change_gives_one_alert_with_the_classes_apps_shows(
        storage: Storage, enricher_and_registry: Pair) -> None:
    sequence = replay.detour_sequence()
    detour_at = min(r["timestamp"] for r in sequence
                    if "4.69.144.143" in json.dumps(r["result"]))
    context = AnalysisContext(*enricher_and_registry,
                              {"Wikipedia": ["wikipedia-lb.esams.wikimedia.org"]})
    bus_url = f"memory://home-verdicts-alerts-{next(_COUNTER)}"
    component = AlertsComponent(AlertSettings(), storage, open_bus(bus_url), channels={})
    shown: list[str] = []
    # in three parts, as time goes by: before the detour, the detour, after it
    cut = detour_at - detour_at % 3600
    parts = [[r for r in sequence if r["timestamp"] < cut],
             [r for r in sequence if cut <= r["timestamp"] < cut + 3600],
             [r for r in sequence if r["timestamp"] >= cut + 3600]]
    for part in parts:
        windows = ingest(storage, [orjson.dumps(r) for r in part])
        bus = open_bus(bus_url)
        analyse_windows(storage, bus, context, windows)
        bus.close()
        shown.append(state(storage, "Wikipedia").verdict)
        while component.poll_once(timeout=0.2):
            pass
    (alert,) = component.store.list_alerts()
    assert alert["application"] == "Wikipedia" and alert["vantage_set"] == "nl"
    assert shown[0] == alert["before_verdict"] == "us_operated_in_eu"
    assert shown[1] == alert["after_verdict"] == "routed_via_us"
    assert alert["state"] == "resolved"  # the detour went away
    assert alert["first_seen"].replace(tzinfo=dt.UTC) >= dt.datetime.fromtimestamp(
        detour_at, dt.UTC)
    # the current state still shows the detour: it is inside the 24 h period
    assert shown[2] == "routed_via_us"
