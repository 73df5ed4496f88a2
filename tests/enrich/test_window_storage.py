"""One analysis pass on a real chDB store: traceroute_hops in, verdict tables out."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from consumers.enrich import Enricher, VantageRegistry
from consumers.enrich.window import paths_from_rows
from consumers.graph.window import read_rows
from consumers.home import VerdictSettings
from consumers.pipeline import AnalysisContext, analyse_window
from consumers.storage import Storage
from grenswacht.cli import app
from schemas.normalize import TABLE_COLUMNS, RowBatch, normalize_into
from tests.enrich.conftest import read_results

APPS = {
    "wikipedia": ["wikipedia-lb.esams.wikimedia.org"],
    "facebook": ["www.facebook.com.", "66.220.156.68"],  # msm 3082698 targeted the address
    "not-measured": ["example.invalid"],
}


def _ingest(storage: Storage) -> None:
    batch = RowBatch()
    for name in ("pierky_msm1033154_wikipedia_esams.jsonl", "pierky_msm3082698_facebook.jsonl"):
        for result in read_results(name):
            normalize_into(result, batch, source="file")
    columns = batch.columns("traceroute_hops")
    storage.insert("traceroute_hops",
                   dict(zip(TABLE_COLUMNS["traceroute_hops"], columns, strict=True)))


def test_window_verdicts_are_stored_with_evidence_and_versions(
    storage: Storage, enricher_and_registry: tuple[Enricher, VantageRegistry]
) -> None:
    enricher, registry = enricher_and_registry
    _ingest(storage)
    start = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2017, 1, 1, tzinfo=dt.UTC)
    # every located probe is a home vantage point here (the Facebook probes are in Italy)
    context = AnalysisContext(enricher, registry, APPS, VerdictSettings(home_countries=["*"]))
    summary = analyse_window(storage, None, start, end, context)
    assert summary.paths == storage.query(
        "SELECT count() FROM (SELECT DISTINCT measurement_id, probe_id, timestamp, "
        "destination_address FROM traceroute_hops WHERE destination_address != '')").rows[0][0]
    assert summary.corrections > 50
    apps = {a.application: a for a in summary.applications}
    assert apps["facebook"].verdict == "hosted_in_us"
    assert apps["wikipedia"].verdict in ("us_operated_in_eu", "routed_via_us")
    assert "not-measured" not in apps  # no home path: no row, nothing changes

    stored = storage.query(
        "SELECT count(), countIf(has_correction), countIf(has_correction AND "
        "physical_country = 'US') FROM hop_verdicts FINAL").rows[0]
    assert stored[0] == summary.hop_verdicts and stored[1] > 50 and stored[2] == 0
    versions = storage.query(
        "SELECT dataset_versions FROM path_verdicts FINAL LIMIT 1").rows[0][0]
    assert "geoip2fast" in versions and "grenswacht-operators" in versions
    verdicts = dict(storage.query(
        "SELECT application, verdict FROM application_verdicts FINAL").rows)
    assert verdicts["facebook"] == "hosted_in_us"
    assert storage.query("SELECT count() FROM vantage_points FINAL").rows[0][0] > 50

    shown = CliRunner().invoke(app, ["verdicts", "--storage", storage.dsn, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert "hosted_in_us" in shown.output and "facebook" in shown.output

    # recomputing the window replaces, it does not add
    analyse_window(storage, None, start, end, context)
    again = storage.query("SELECT count() FROM hop_verdicts FINAL").rows[0][0]
    assert again == stored[0]


def test_paths_read_from_storage_equal_paths_from_normalised_rows(storage: Storage) -> None:
    """The rows the analysis reads give the end-to-end constraint the same smallest and
    largest RTT and unanswered probes per hop as the normalised rows."""
    _ingest(storage)
    parameters = {"start": dt.datetime(2013, 1, 1, tzinfo=dt.UTC),
                  "end": dt.datetime(2017, 1, 1, tzinfo=dt.UTC)}
    stored = {(p.measurement_id, p.probe_id, p.timestamp): p for p in paths_from_rows(
        read_rows(storage, parameters["start"], parameters["end"])[0])}
    batch = RowBatch()
    for name in ("pierky_msm1033154_wikipedia_esams.jsonl", "pierky_msm3082698_facebook.jsonl"):
        for result in read_results(name):
            normalize_into(result, batch, source="file")
    raw = {(p.measurement_id, p.probe_id, p.timestamp): p
           for p in paths_from_rows(batch.as_dicts("traceroute_hops"))}
    assert stored.keys() == raw.keys() and len(raw) > 80
    assert sum(sum(p.timeouts.values()) for p in raw.values()) > 100
    for key, path in raw.items():
        assert stored[key].hops == pytest.approx(path.hops), key
        assert stored[key].slowest == pytest.approx(path.slowest), key
        assert stored[key].timeouts == path.timeouts, key
