"""Path verdicts over the bundled corpus, window by window as the pipeline computes them.

The corpus is every traceroute and ping in ``tests/fixtures/atlas`` (the fixtures, with the
RIPE Atlas probe metadata fixtures as vantage positions) and in ``../shared/data/atlas/bulk``.
Results are grouped into the pipeline's hourly windows; per window: the path graph's
anycast detector (high-confidence anycast addresses, as ``consumers.analysis`` passes
them), then ``consumers.enrich.window.verdicts_for_paths`` with the window's pings. Prints
the share of every destination class, the ``unknown`` share, and how often the new
constraints decided (docs/jurisdiction.md quotes the figures).

    .venv/bin/python tools/corpus_verdicts.py [--json]   # GRENSWACHT_SHARED_ATLAS: the corpus

``tests/enrich/test_corpus_end_to_end.py`` runs the same windows and checks every verdict.
"""

from __future__ import annotations

import datetime as dt
import gzip
import inspect
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consumers.enrich import (  # noqa: E402
    Enricher,
    JurisdictionSettings,
    VantageRegistry,
    open_enricher,  # noqa: E402
)
from consumers.enrich import window as enrich_window  # noqa: E402
from consumers.graph import anycast  # noqa: E402
from consumers.graph.build import Window, traces_from_rows  # noqa: E402
from consumers.graph.window import locate  # noqa: E402
from schemas.errors import ResultError  # noqa: E402
from schemas.normalize import RowBatch, normalize_into  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "atlas"
SHARED = Path(os.environ.get("GRENSWACHT_SHARED_ATLAS",  # as tests/conftest.py
                             ROOT.parent / "shared" / "data" / "atlas"))
WINDOW_S = 3600


def corpus_files(shared: Path = SHARED) -> list[Path]:
    """Every traceroute and ping file of the corpus (fixtures first)."""
    files = sorted((FIXTURES / "traceroute").glob("*.jsonl"))
    files += sorted((FIXTURES / "ping").glob("*.jsonl"))
    files += sorted((shared / "bulk").glob("*/traceroute*.jsonl.gz"))
    files += sorted((shared / "bulk").glob("*/ping*.jsonl.gz"))
    return files


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield line


def windows(files: list[Path], window_s: int = WINDOW_S) -> dict[int, RowBatch]:
    """Normalised rows of every result, by window start (seconds)."""
    out: dict[int, RowBatch] = {}
    for path in files:
        for line in _lines(path):
            result = orjson.loads(line)
            stamp = result.get("timestamp") if isinstance(result, dict) else None
            if not isinstance(stamp, int):
                continue
            batch = out.setdefault(stamp - stamp % window_s, RowBatch())
            try:
                normalize_into(result, batch, source="file")
            except ResultError:
                continue
    return out


def open_corpus_enricher() -> tuple[Enricher, VantageRegistry]:
    probes = sorted((FIXTURES / "api").glob("pierky_*_probes_api_v2.json"))
    return open_enricher(JurisdictionSettings(atlas_probe_files=probes))


def window_results(start: int, batch: RowBatch, enricher: Enricher,
                   registry: VantageRegistry) -> list[enrich_window.PathResult]:
    """What the pipeline computes for one window: anycast first, then the verdicts."""
    rows = batch.as_dicts("traceroute_hops")
    begin = dt.datetime.fromtimestamp(start, dt.UTC)
    graph = Window(begin, begin + dt.timedelta(seconds=WINDOW_S), traces=traces_from_rows(rows))
    locate(graph, registry)
    found = anycast.detect(graph)
    addresses = frozenset(f.subject for f in found if f.confidence == "high")
    paths = enrich_window.paths_from_rows(rows)
    parameters = inspect.signature(enrich_window.verdicts_for_paths).parameters
    if "observations" in parameters:  # this code base; older ones had no pings
        pings = enrich_window.ping_observations(batch.as_dicts("ping_results"), registry)
        return enrich_window.verdicts_for_paths(paths, enricher, registry, addresses, pings)
    return enrich_window.verdicts_for_paths(paths, enricher, registry, addresses)


def summary(results: list[enrich_window.PathResult]) -> dict[str, Any]:
    classes = Counter(r.verdict.verdict for r in results)
    basis = Counter(getattr(r.verdict.destination.physical, "basis", "") or "none"
                    for r in results)
    refuted = sum(len(getattr(r.verdict, "refutations", ())) for r in results)
    total = len(results)
    return {
        "paths": total,
        "classes": dict(classes.most_common()),
        "unknown_share": round(classes.get("unknown", 0) / total, 4) if total else 0.0,
        "destination_basis": dict(basis.most_common()),
        "end_to_end_refutations": refuted,
        "paths_with_end_to_end_refutation": sum(
            1 for r in results if getattr(r.verdict, "refutations", ())),
    }


def main() -> None:
    started = time.perf_counter()
    batches = windows(corpus_files())
    loaded = time.perf_counter() - started
    enricher, registry = open_corpus_enricher()
    results: list[enrich_window.PathResult] = []
    for start in sorted(batches):
        results.extend(window_results(start, batches[start], enricher, registry))
    figures = summary(results)
    figures["windows"] = len(batches)
    figures["seconds"] = {"load": round(loaded, 1),
                          "verdicts": round(time.perf_counter() - started - loaded, 1)}
    if "--json" in sys.argv:
        sys.stdout.write(json.dumps(figures, indent=1) + "\n")
        return
    for key, value in figures.items():
        sys.stdout.write(f"{key}: {value}\n")


if __name__ == "__main__":
    main()
