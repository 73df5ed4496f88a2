"""Issue 17, on real RIPE Atlas results with home paths, application verdicts, anycast and
load balancers: windows analysed in spans (one read, one write per table:
``consumers.pipeline.analyse_span``) store exactly the rows of the same windows analysed one
at a time; the rows the analysis reads (one per result, its replies as arrays) give the
verdicts of one row per reply."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from consumers import analysis
from consumers.analysis import analyse_windows, spans, window_bounds
from consumers.graph.window import read_rows
from consumers.home import VerdictSettings
from consumers.pipeline import (
    AnalysisContext,
    analyse_rows,
    analyse_window,
    read_input,
    split_input,
)
from consumers.storage import Storage
from consumers.verdict_tables import hop_columns, path_columns
from tests.consumers.test_home_verdicts import (
    APPS,
    FACEBOOK,
    GOOGLE_NEWS,
    WIKIPEDIA,
    Pair,
    enricher_and_registry,  # noqa: F401 - the module's fixture
    file_results,
    ingest,
)

TABLES = {
    "hop_verdicts": ("computed_at",),
    "path_verdicts": ("computed_at",),
    "application_verdicts": ("computed_at",),
    "findings": ("detected_at",),
    "vantage_points": ("computed_at",),
}


def _rows(storage: Storage) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, left_out in TABLES.items():
        names = [row[0] for row in storage.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND "
            "table = {t:String} ORDER BY position", {"t": table}).rows
            if row[0] not in left_out]
        listed = ", ".join(f"toString({name})" for name in names)
        out[table] = sorted(storage.query(f"SELECT {listed} FROM {table} FINAL").rows)
    return out


def _empty_verdicts(storage: Storage) -> None:
    for table in TABLES:
        storage.command(f"TRUNCATE TABLE {table}")


@pytest.mark.parametrize("max_rows", [analysis.MAX_SPAN_ROWS, 600])
def test_spans_store_the_rows_of_one_window_at_a_time(
        storage: Storage, enricher_and_registry: Pair,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, max_rows: int) -> None:
    windows = sorted(ingest(storage, file_results(WIKIPEDIA) + file_results(GOOGLE_NEWS)
                            + file_results(FACEBOOK)))
    context = AnalysisContext(*enricher_and_registry, APPS, VerdictSettings())
    for window in windows:
        analyse_window(storage, None, *window_bounds(window, 3600), context)
    alone = _rows(storage)
    assert len(windows) > 3 and len(alone["application_verdicts"]) > 3
    assert {row[0] for row in alone["application_verdicts"]} >= {"Wikipedia", "Google News"}
    assert alone["findings"] and alone["path_verdicts"]

    _empty_verdicts(storage)
    context.written_vantages.clear()
    monkeypatch.setattr(analysis, "MAX_SPAN_ROWS", max_rows)
    grouped = spans(storage, windows, 3600)
    assert [w for span in grouped for w in span] == windows
    if max_rows == analysis.MAX_SPAN_ROWS:
        assert len(grouped) < len(windows)  # some spans hold several windows
    else:
        assert len(grouped) > 1
    stats = analyse_windows(storage, None, context, windows)
    assert stats.failing == {} and stats.windows == len(windows)
    together = _rows(storage)
    for table in TABLES:
        assert together[table] == alone[table], table


def test_one_row_per_result_gives_the_verdicts_of_one_row_per_reply(
        storage: Storage, enricher_and_registry: Pair) -> None:  # noqa: F811
    """What the analysis reads (``read_path_rows``: a result's replies as one array) gives
    the hop and path verdicts and findings of the rows of one reply each."""
    windows = sorted(ingest(storage, file_results(WIKIPEDIA) + file_results(GOOGLE_NEWS)
                            + file_results(FACEBOOK)))
    context = AnalysisContext(*enricher_and_registry, APPS, VerdictSettings())
    computed = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    start, _ = window_bounds(windows[0], 3600)
    _, end = window_bounds(windows[-1], 3600)
    compact = read_input(storage, start, end, context)
    per_reply = replace(compact, hop_rows=read_rows(storage, start, end)[0])
    assert len(compact.hop_rows) < len(per_reply.hop_rows)
    checked = 0
    for window, data in split_input(compact, 3600, context.verdicts.period_s).items():
        other = split_input(per_reply, 3600, context.verdicts.period_s)[window]
        mine, theirs = analyse_rows(data, context), analyse_rows(other, context)
        assert hop_columns(mine.results, computed) == hop_columns(theirs.results, computed)
        assert path_columns(mine.results, computed, 2) == path_columns(theirs.results,
                                                                       computed, 2)
        assert [f.finding_id for f in mine.findings] == [f.finding_id for f in theirs.findings]
        assert [f.evidence for f in mine.findings] == [f.evidence for f in theirs.findings]
        checked += len(mine.results)
    assert checked > 100


def test_a_span_that_fails_is_analysed_one_window_at_a_time(
        storage: Storage, enricher_and_registry: Pair,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A span's write that fails (here: every span's) leaves no window unanalysed: each is
    tried alone, and only the one that fails alone is recorded as failing."""
    windows = sorted(ingest(storage, file_results(WIKIPEDIA) + file_results(FACEBOOK)))
    context = AnalysisContext(*enricher_and_registry, APPS, VerdictSettings())
    real = analysis.analyse_window

    def broken_span(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the span's insert failed")

    def one(storage: Storage, bus: Any, start: dt.datetime, *args: Any, **kwargs: Any) -> Any:
        if start == dt.datetime.fromtimestamp(windows[0], dt.UTC):
            raise RuntimeError("this window fails alone")
        return real(storage, bus, start, *args, **kwargs)

    monkeypatch.setattr(analysis, "analyse_span", broken_span)
    monkeypatch.setattr(analysis, "analyse_window", one)
    stats = analyse_windows(storage, None, context, windows)
    assert list(stats.failing) == [windows[0]] and stats.windows == len(windows) - 1
    assert "fails alone" in stats.failing[windows[0]].error
