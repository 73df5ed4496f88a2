"""The analysis consumer: new results -> one pipeline pass per window, commit after,
catch-up, max delay, failing windows with backoff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import consumers.analysis as analysis
from consumers import pipeline
from consumers.analysis import AnalysisLoop
from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.ingest import IngestConsumer
from consumers.pipeline import AnalysisContext
from consumers.storage import Storage
from grenswacht.files import read_results
from schemas import topics
from schemas.bus import TopicPartition, open_bus
from schemas.bus.memory import broker_for
from schemas.errors import StorageError
from schemas.retry import RetryPolicy
from schemas.verdicts import VerdictMessage

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
WIKIPEDIA = FIXTURES / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl"
PROBES = FIXTURES / "api" / "pierky_msm1033154_probes_api_v2.json"
APPS = {"wikipedia": ["wikipedia-lb.esams.wikimedia.org"]}


def _publish(name: str, path: Path) -> int:
    bus = open_bus(f"memory://{name}")
    count = 0
    for record in read_results(path):
        bus.publish(topics.RESULTS, record.value, key=record.key, headers=record.headers)
        count += 1
    bus.close()
    return count


def _context() -> AnalysisContext:
    enricher, registry = open_enricher(JurisdictionSettings(atlas_probe_files=[PROBES]))
    return AnalysisContext(enricher, registry, APPS)


def _loop(storage: Storage, name: str, **options: Any) -> AnalysisLoop:
    return AnalysisLoop(storage, open_bus(f"memory://{name}"), _context(),
                        **{"settle_s": 5.0, **options})


def _ingest(storage: Storage, name: str) -> int:
    published = _publish(name, WIKIPEDIA)
    IngestConsumer(open_bus(f"memory://{name}"), storage, group="ingest").drain(idle_timeout=0)
    return published


def test_new_results_get_verdicts_and_offsets_are_committed_after(storage: Storage) -> None:
    name = "t-analysis"
    published = _ingest(storage, name)
    loop = _loop(storage, name)
    assert loop.poll_once(timeout=0.1, now=100.0) == published
    broker = broker_for(name)
    # not settled yet: nothing computed, nothing committed
    assert storage.query("SELECT count() FROM path_verdicts").rows == [(0,)]
    assert broker.lag(loop.group, topics.RESULTS) == published
    loop.poll_once(timeout=0.1, now=106.0)
    traces = storage.query("SELECT count() FROM raw_results FINAL WHERE result_type = "
                           "'traceroute' AND destination != ''").rows[0][0]
    verdicts = storage.query("SELECT count() FROM path_verdicts FINAL").rows[0][0]
    assert 0 < verdicts <= traces
    assert broker.lag(loop.group, topics.RESULTS) == 0
    assert loop.stats.windows >= 1 and loop.stats.paths == verdicts
    # one application row per window that measured it from home (NL), none for the rest
    apps = storage.query("SELECT application, path_count, home_sets FROM "
                         "application_verdicts FINAL").rows
    home = storage.query("SELECT count() FROM path_verdicts FINAL WHERE home_set = 'nl' "
                         "AND has(applications, 'wikipedia')").rows[0][0]
    assert [(a, s) for a, _n, s in apps] == [("wikipedia", ["nl"])]
    assert apps[0][1] == home == loop.stats.home_paths
    # the path-graph detectors ran in the same pass and stored what they found
    found = sum(loop.stats.findings.values())
    assert found > 0
    assert storage.query("SELECT count() FROM findings FINAL").rows == [(found,)]
    assert set(loop.stats.findings) <= {"load_balancer", "route_change", "anycast",
                                         "us_transit"}
    # and the path verdicts were published for readers (alerts): every path once
    reader = open_bus(f"memory://{name}")
    reader.subscribe([topics.VERDICTS], "test-reader")
    paths = [p for m in reader.poll(1000, timeout=1.0)
             for p in VerdictMessage.from_bytes(m.value).paths]
    reader.close()
    assert len(paths) == verdicts
    assert {p.home_set for p in paths} == {"", "nl"}


def test_catch_up_analyses_results_ingested_while_no_analysis_ran(storage: Storage) -> None:
    _ingest(storage, "t-analysis-catch-up")
    loop = _loop(storage, "t-analysis-empty")  # a bus that carries none of these results
    assert loop.catch_up() >= 1
    loop.process_settled(0.0)
    assert storage.query("SELECT count() FROM path_verdicts FINAL").rows[0][0] > 0
    again = _loop(storage, "t-analysis-empty-2")
    # traces that failed before hop 1 (no destination address) cannot have a path verdict
    # and are not queued again and again
    assert again.catch_up() == 0
    # rows of an older pipeline are analysed again (e.g. the old class 'anycast')
    storage.command("ALTER TABLE path_verdicts UPDATE pipeline = 1 WHERE 1 "
                    "SETTINGS mutations_sync = 1")
    assert _loop(storage, "t-analysis-empty-3").catch_up() >= 1


def test_a_pending_window_holds_back_the_commit_of_its_partition(storage: Storage) -> None:
    loop = _loop(storage, "t-analysis-commit")
    tp = TopicPartition(topics.RESULTS, 0)
    loop._spans = {3600: {tp: [5, 8]}, 7200: {tp: [8, 12]}}
    loop._done = {tp: 12}
    bus = open_bus("memory://t-analysis-commit")
    loop.bus = bus
    bus.subscribe([topics.RESULTS], loop.group)
    loop._commit_safe()
    assert broker_for("t-analysis-commit").committed(loop.group, tp) == 5


def test_a_window_that_keeps_receiving_results_is_analysed_within_max_delay(
        storage: Storage) -> None:
    name = "t-analysis-delay"
    _ingest(storage, name)
    loop = _loop(storage, name, settle_s=100.0, max_delay_s=30.0)
    loop.poll_once(timeout=0.1, now=0.0)
    # results keep coming (every 10 s): never quiet for settle_s
    loop._pending[next(iter(loop._pending))].last = 25.0
    loop.process_settled(25.0)
    assert loop.stats.windows == 0
    loop.process_settled(31.0)  # 31 s after its first result: analysed although not quiet
    assert loop.stats.windows >= 1


def test_a_failing_window_is_recorded_skipped_and_retried_with_backoff(
        storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "t-analysis-failing"
    _ingest(storage, name)
    loop = _loop(storage, name, retry_initial_s=10.0, retry_max_s=40.0)
    loop.poll_once(timeout=0.1, now=0.0)
    real = pipeline.analyse_window
    calls: list[float] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise StorageError("the store is read-only for a while")

    monkeypatch.setattr("consumers.analysis.analyse_window", broken)
    windows = sorted(loop._pending)
    loop.process_settled(10.0)
    assert len(calls) == len(windows) and loop.stats.windows == 0
    status = loop.status()
    assert status["failures"] == len(windows) and status["pending_windows"] == len(windows)
    failing = next(iter(status["failing_windows"].values()))
    assert failing["failures"] == 1 and "read-only" in failing["error"]
    loop.process_settled(15.0)  # within the backoff: not tried again (no hot loop)
    assert len(calls) == len(windows)
    loop.process_settled(21.0)
    assert len(calls) == 2 * len(windows)
    assert [RetryPolicy(10.0, 40.0).delay(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, 40.0]
    monkeypatch.setattr("consumers.analysis.analyse_window", real)
    loop.process_settled(100.0)
    assert loop.stats.windows == len(windows) and loop.status()["failing_windows"] == {}
    assert broker_for(name).lag(loop.group, topics.RESULTS) == 0


def test_only_proven_anycast_sets_the_anycast_flag(storage: Storage) -> None:
    """esams is unicast; one probe's wrong registered position gives a *medium* anycast
    finding (docs/graph.md), which must not flag its paths as anycast."""
    name = "t-analysis-anycast"
    _ingest(storage, name)
    loop = _loop(storage, name)
    loop.poll_once(timeout=0.1, now=0.0)
    loop.process_settled(100.0)
    assert storage.query("SELECT countIf(anycast), countIf(verdict = 'anycast') FROM "
                         "path_verdicts FINAL").rows == [(0, 0)]
    assert storage.query("SELECT count() FROM findings FINAL WHERE kind = 'anycast' AND "
                         "confidence = 'medium'").rows[0][0] > 0


def test_a_window_that_keeps_failing_is_given_up_and_a_year_9999_result_names_none(
        storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any error (an OverflowError is no GrenswachtError) is recorded; the backoff grows;
    after MAX_WINDOW_ATTEMPTS the window is given up and committed past (issue 12)."""
    name = "t-analysis-give-up"
    _ingest(storage, name)
    year_9999 = orjson.loads(WIKIPEDIA.read_bytes().splitlines()[0])
    year_9999["timestamp"] = 253_402_300_799  # 9999-12-31: no table holds it
    open_bus(f"memory://{name}").publish(topics.RESULTS, orjson.dumps(year_9999),
                                         headers=[("gw-source", b"t")])
    loop = _loop(storage, name, retry_initial_s=10.0, retry_max_s=40.0)
    loop.poll_once(timeout=0.1, now=0.0)
    windows = sorted(w for w in loop._pending if w >= 0)
    assert windows and all(w < 4_102_444_800 for w in windows)  # 9999 names no window
    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise OverflowError("date value out of range")

    monkeypatch.setattr("consumers.analysis.analyse_window", broken)
    now = 10.0
    for attempt in range(1, analysis.MAX_WINDOW_ATTEMPTS + 1):
        loop.process_settled(now)
        assert len(calls) == attempt * len(windows)
        for _ in range(20):  # right away again: the backoff holds (no hot loop)
            loop.process_settled(now + 1.0)
        assert len(calls) == attempt * len(windows)
        now = min(f.retry_at for f in loop.stats.failing.values()) + 0.1
    failing = loop.status()["failing_windows"]
    assert all(f["gave_up"] and "OverflowError" in f["error"] for f in failing.values())
    assert not [w for w in loop._pending if w >= 0]  # given up: committed past
    loop.process_settled(now + 10_000)
    assert len(calls) == analysis.MAX_WINDOW_ATTEMPTS * len(windows)


def test_us_claims_of_home_paths_that_physics_allows_become_confirmation_requests(
        storage: Storage) -> None:
    """The pipeline's confirmation step (issue 16 item 5): after the verdicts of a window,
    hops of home paths whose US claim rests on a geo database alone are requested once
    (cool-down) on the confirm-requests topic, for the scheduler to ping."""
    from consumers.home import VerdictSettings
    from schemas.confirm import ConfirmationRequest

    name = "t-analysis-confirm"
    published = 0
    for path in sorted((FIXTURES / "traceroute").glob("*.jsonl")):
        published += _publish(name, path)
    IngestConsumer(open_bus(f"memory://{name}"), storage, group="ingest").drain(idle_timeout=0)
    enricher, registry = open_enricher(JurisdictionSettings(
        atlas_probe_files=sorted((FIXTURES / "api").glob("pierky_*_probes_api_v2.json"))))
    context = AnalysisContext(enricher, registry, APPS,
                              VerdictSettings(home_countries=["*"]))
    reader = open_bus(f"memory://{name}")
    reader.subscribe([topics.CONFIRM_REQUESTS], "t-scheduler")
    loop = AnalysisLoop(storage, open_bus(f"memory://{name}"), context, settle_s=5.0)
    assert loop.poll_once(timeout=0.1, now=0.0) == published
    loop.process_settled(100.0)
    requests = [ConfirmationRequest.model_validate_json(m.value)
                for m in reader.poll(max_records=10_000, timeout=0.5)]
    assert requests and loop.stats.steps["confirm"]["requests"] == len(requests)
    assert len({r.address for r in requests}) == len(requests)
    for request in requests:  # a hop stored as US that physics did not rule out
        assert request.claimed_country == "US"
        assert storage.query(
            "SELECT count() FROM hop_verdicts FINAL WHERE reply_address = {a:String} "
            "AND physical_country = 'US' AND us_possible", {"a": request.address}
        ).rows[0][0] > 0
    windows = [int(w) for (w,) in storage.query(
        "SELECT DISTINCT intDiv(toUnixTimestamp(timestamp), 3600) * 3600 FROM path_verdicts"
    ).rows]
    again = analysis.analyse_windows(storage, loop.bus, context, windows)
    assert again.windows == len(windows) and again.steps["confirm"]["requests"] == 0
    assert reader.poll(max_records=10_000, timeout=0.2) == []  # cool-down: not twice
