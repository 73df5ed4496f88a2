"""The analysis consumer: new results -> verdicts per window, commit after, catch-up."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consumers.analysis import AnalysisLoop
from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.ingest import IngestConsumer
from consumers.storage import Storage
from grenswacht.files import read_results
from schemas import topics
from schemas.bus import TopicPartition, open_bus
from schemas.bus.memory import broker_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
WIKIPEDIA = FIXTURES / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl"
PROBES = FIXTURES / "api" / "pierky_msm1033154_probes_api_v2.json"


def _publish(name: str, path: Path) -> int:
    bus = open_bus(f"memory://{name}")
    count = 0
    for record in read_results(path):
        bus.publish(topics.RESULTS, record.value, key=record.key, headers=record.headers)
        count += 1
    bus.close()
    return count


def _loop(storage: Storage, name: str) -> AnalysisLoop:
    enricher, registry = open_enricher(JurisdictionSettings(atlas_probe_files=[PROBES]))
    return AnalysisLoop(storage, open_bus(f"memory://{name}"), enricher, registry,
                        {"wikipedia": ["wikipedia-lb.esams.wikimedia.org"]}, settle_s=5.0)


def test_new_results_get_verdicts_and_offsets_are_committed_after(storage: Storage) -> None:
    name = "t-analysis"
    published = _publish(name, WIKIPEDIA)
    IngestConsumer(open_bus(f"memory://{name}"), storage, group="ingest").drain(idle_timeout=0)
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
    assert verdicts > 0 and verdicts <= traces
    assert broker.lag(loop.group, topics.RESULTS) == 0
    assert loop.stats.windows >= 1 and loop.stats.paths == verdicts
    apps = storage.query("SELECT application, path_count FROM application_verdicts FINAL").rows
    assert len(apps) == loop.stats.windows  # one verdict per application and window
    assert {a for a, _ in apps} == {"wikipedia"} and sum(n for _, n in apps) == verdicts
    # the path-graph step ran on the same windows and stored what it found
    found = loop.stats.steps["graph"]["findings"]
    assert found > 0
    assert storage.query("SELECT count() FROM findings FINAL").rows == [(found,)]
    assert set(loop.stats.steps["graph"]["kinds"]) <= {
        "load_balancer", "route_change", "anycast", "us_transit"}


def test_catch_up_analyses_results_ingested_while_no_analysis_ran(storage: Storage) -> None:
    name = "t-analysis-catch-up"
    _publish(name, WIKIPEDIA)
    IngestConsumer(open_bus(f"memory://{name}"), storage, group="ingest").drain(idle_timeout=0)
    loop = _loop(storage, "t-analysis-empty")  # a bus that carries none of these results
    assert loop.catch_up() >= 1
    loop.process_settled(0.0)
    assert storage.query("SELECT count() FROM path_verdicts FINAL").rows[0][0] > 0
    again = _loop(storage, "t-analysis-empty-2")
    # traces that failed before hop 1 (no destination address) cannot have a path verdict
    # and are not queued again and again
    assert again.catch_up() == 0


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


def test_only_proven_anycast_changes_the_verdict_class(storage: Storage) -> None:
    """esams is unicast; one probe's wrong registered position gives a *medium* anycast
    finding (docs/graph.md), which must not turn its paths into the anycast class."""
    name = "t-analysis-anycast"
    _publish(name, WIKIPEDIA)
    IngestConsumer(open_bus(f"memory://{name}"), storage, group="ingest").drain(idle_timeout=0)
    loop = _loop(storage, name)
    loop.poll_once(timeout=0.1, now=0.0)
    loop.process_settled(100.0)
    assert storage.query("SELECT count() FROM path_verdicts FINAL WHERE verdict = 'anycast'"
                         ).rows == [(0,)]


def test_a_failing_window_is_recorded_skipped_retried_with_backoff_then_given_up(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import consumers.analysis as analysis

    name = "t-analysis-fail"
    published = _publish(name, WIKIPEDIA)
    year_9999 = orjson.loads(WIKIPEDIA.read_bytes().splitlines()[0])
    year_9999["timestamp"] = 253_402_300_799  # 9999-12-31: no table holds it
    producer = open_bus(f"memory://{name}")
    producer.publish(topics.RESULTS, orjson.dumps(year_9999), headers=[("gw-source", b"t")])
    IngestConsumer(open_bus(f"memory://{name}"), storage, group="ingest").drain(idle_timeout=0)
    calls: list[int] = []

    def broken(*args: object) -> dict[str, object]:
        calls.append(1)
        raise OverflowError("date value out of range")

    monkeypatch.setitem(analysis.WINDOW_STEPS, "graph", broken)
    loop = _loop(storage, name)
    assert loop.poll_once(timeout=0.1, now=0.0) == published + 1
    windows = {w for w in loop._pending if w >= 0}
    now = 10.0
    loop.process_settled(now)  # settled: every window fails once
    assert len(calls) == len(windows)
    failing = loop.stats.failing_windows(now)
    assert {f["attempts"] for f in failing} == {1}
    assert all("OverflowError" in f["error"] and not f["gave_up"] for f in failing)
    # polling again right away does not retry (no hot loop): the backoff holds
    for _ in range(50):
        loop.process_settled(now + 1.0)
    assert len(calls) == len(windows)
    delays = []
    for attempt in range(2, analysis.MAX_WINDOW_ATTEMPTS + 1):
        due = min(f["next_at"] for f in loop.stats.failing.values())
        delays.append(due - now)
        now = due
        loop.process_settled(now)
        assert len(calls) == len(windows) * attempt
    assert delays == sorted(delays) and delays[-1] > delays[0]  # backoff grows
    assert all(f["gave_up"] for f in loop.stats.failing_windows(now))
    assert not [w for w in loop._pending if w >= 0]  # given up: committed past
    loop.process_settled(now + 10_000)
    assert len(calls) == len(windows) * analysis.MAX_WINDOW_ATTEMPTS
