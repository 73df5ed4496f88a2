"""Cost of the physics across replies, against per-reply physics in the same run.

Over every bulk traceroute in ../shared/data/atlas/bulk, grouped into hourly windows as the
pipeline does, it times (a) the bare per-reply work every hop verdict needs: the vantage
position, the geo claims, the reply's own RTT bound against the US and the legal axis (what
a hop verdict was before physics across replies), and (b) the full ``verdicts_for_paths``:
the window's regions (every vantage point's discs), the claim checks, physics-only location,
the end-to-end constraint and the path classes. Prints results/s for both and b/a. The
Natural Earth shapes are loaded before either is timed (once per process, shown
separately).

    .venv/bin/python bench/physics.py [BULK_DIR]
"""

from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path

import orjson

from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.enrich.countries import countries, us_outline
from consumers.enrich.physics import us_bound
from consumers.enrich.window import hop_verdicts_for_path, paths_from_rows, verdicts_for_paths
from schemas.errors import ResultError
from schemas.normalize import RowBatch, normalize_into

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlas" / "bulk"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    batches: dict[int, RowBatch] = {}
    for path in sorted(folder.rglob("traceroute*.jsonl.gz")):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                result = orjson.loads(line)
                stamp = int(result.get("timestamp", 0))
                batch = batches.setdefault(stamp - stamp % 3600, RowBatch())
                try:
                    normalize_into(result, batch, source="file")
                except ResultError:
                    continue
    windows = [paths_from_rows(b.as_dicts("traceroute_hops")) for b in batches.values()]
    results = sum(len(w) for w in windows)
    print(f"{results} traceroutes in {len(windows)} hourly windows")

    started = time.perf_counter()
    countries()
    us_outline()
    print(f"Natural Earth shapes loaded in {time.perf_counter() - started:.2f} s")
    enricher, registry = open_enricher(JurisdictionSettings())
    for paths in windows[:3]:  # geo sources' own caches warm for both runs alike
        for path in paths:
            hop_verdicts_for_path(path, enricher, registry)

    started = time.perf_counter()
    for paths in windows:
        for path in paths:
            vantage = registry.resolve(path.probe_id, path.vantage_point,
                                       path.probe_public_address)
            for (_hop, address), rtt in path.hops.items():
                enricher.claims(address)
                enricher.legal(address)
                if vantage is not None and rtt is not None:
                    us_bound(rtt, vantage)
    per_reply = time.perf_counter() - started
    print(f"(a) bare per-reply work: {results / per_reply:,.0f} results/s")

    started = time.perf_counter()
    refuted = 0
    for paths in windows:
        for result in verdicts_for_paths(paths, enricher, registry):
            refuted += len(result.verdict.refutations)
    full = time.perf_counter() - started
    print(f"(b) regions + location + end to end + classes: {results / full:,.0f} results/s "
          f"({refuted} end-to-end refutations)")
    print(f"    b/a = {full / per_reply:.2f} (time)")


if __name__ == "__main__":
    main()
