"""Scale bench of the path graph: every bulk traceroute in ../shared/data/atlas/bulk.

Builds directly from normalised rows (``schemas.normalize``, the same rows ingest writes to
ClickHouse), not through chDB, so the figures are the graph code's own. In ONE run it prints:
(a) the bare graph build (one NetworkX graph per destination) in results/s, (b) graphs +
every detector in ``DETECTORS`` (hop verdicts computed first with ``consumers.enrich``,
timed separately) in results/s, and b/a.

    .venv/bin/python bench/graph.py [BULK_DIR]
"""

from __future__ import annotations

import datetime as dt
import gzip
import sys
import time
from pathlib import Path

import orjson

from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.graph import detect_all
from consumers.graph.build import Window, build_graph, traces_from_rows
from consumers.graph.window import evidence_from_enricher, locate
from schemas.errors import ResultError
from schemas.normalize import RowBatch, normalize_into

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlas" / "bulk"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    batch = RowBatch()
    started = time.perf_counter()
    for path in sorted(folder.rglob("traceroute*.jsonl.gz")):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                try:
                    normalize_into(orjson.loads(line), batch, source="file")
                except ResultError:
                    continue
    rows = batch.as_dicts("traceroute_hops")
    results = batch.counts["traceroute"]
    print(f"normalised {results} traceroutes ({len(rows)} hop rows) in "
          f"{time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    traces = traces_from_rows(rows)
    window = Window(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1,
                                                                         tzinfo=dt.UTC),
                    traces=traces)
    graphs = [build_graph(t, m) for t, m in window.by_destination().values()]
    bare = time.perf_counter() - started
    print(f"(a) bare graph build: {len(graphs)} graphs, {results / bare:,.0f} results/s")

    enricher, registry = open_enricher(JurisdictionSettings())
    started = time.perf_counter()
    locate(window, registry)
    window.evidence, vantages = evidence_from_enricher(rows, enricher, registry)
    window.vantages.update(vantages)
    enrich = time.perf_counter() - started
    print(f"    hop verdicts (consumers.enrich, not part of b): {results / enrich:,.0f} "
          "results/s")

    started = time.perf_counter()
    traces = traces_from_rows(rows)
    window.traces = traces
    graphs = [build_graph(t, m, window.address_evidence())
              for t, m in window.by_destination().values()]
    findings = detect_all(window)
    full = time.perf_counter() - started
    kinds: dict[str, int] = {}
    for finding in findings:
        kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
    print(f"(b) graphs + all detectors: {results / full:,.0f} results/s, findings {kinds}")
    print(f"    b/a = {bare / full:.2f}")


if __name__ == "__main__":
    main()
