"""Ingest benchmark on real bulk traceroutes, every rate measured in the same run.

    python bench/ingest.py [PATH.jsonl.gz] [--limit N] [--repeat R]

(a) orjson decode only, (b) ripe-atlas-sagan object parse only, (c) the full ingest into
chDB (decode, normalise, insert into raw_results + traceroute_hops through the memory bus
and the ingest consumer), plus the parts of (c): (n) decode + normalise only and (i) the
ClickHouse inserts only. Prints results/s for each and the ratios c/a and c/b. The machine
is noisy: each rate is the best of ``--repeat`` runs, and only ratios are compared.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from ripe.atlas.sagan import Result  # noqa: E402

from consumers.ingest import IngestConsumer, gc_paused  # noqa: E402
from consumers.storage import open_storage  # noqa: E402
from schemas import topics  # noqa: E402
from schemas.bus import open_bus  # noqa: E402
from schemas.normalize import TABLE_COLUMNS, RowBatch, normalize_into  # noqa: E402

DEFAULT = ROOT.parent / "shared/data/atlas/bulk/menog_internet_study/traceroute_src_KW.jsonl.gz"


def best_rate(count: int, repeat: int, work: Callable[[int], None]) -> float:
    best = float("inf")
    for attempt in range(repeat):
        started = time.perf_counter()
        work(attempt)
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--limit", type=int, default=20_000, help="results to use")
    parser.add_argument("--repeat", type=int, default=3, help="runs per rate; the best counts")
    args = parser.parse_args()
    logging.getLogger("ripe.atlas.sagan").setLevel(logging.ERROR)  # per-hop warnings
    with gzip.open(args.path, "rb") as handle:
        lines = [line for _, line in zip(range(args.limit), handle, strict=False)]
    n = len(lines)
    size = sum(map(len, lines)) / n
    print(f"{n:,} results from {args.path.name}, {size:,.0f} bytes each on average")

    def decode(_: int) -> None:
        for line in lines:
            orjson.loads(line)

    def sagan(_: int) -> None:
        for line in lines:
            Result.get(orjson.loads(line))

    def normalise(_: int) -> None:
        batch = RowBatch()
        with gc_paused():
            for line in lines:
                normalize_into(orjson.loads(line), batch, source="bench", payload=line)

    with gc_paused():
        ready = RowBatch()
        for line in lines:
            normalize_into(orjson.loads(line), ready, source="bench", payload=line)
    storage = open_storage(f"chdb://{tempfile.mkdtemp(prefix='gw-bench-')}")

    def insert_only(attempt: int) -> None:
        for table in ("raw_results", "traceroute_hops"):
            columns = dict(zip(TABLE_COLUMNS[table], ready.columns(table), strict=True))
            storage.insert(table, columns, dedup_token=f"insert-only-{attempt}")

    def full(attempt: int) -> None:
        bus = open_bus(f"memory://bench-{attempt}")
        consumer = IngestConsumer(bus, storage, group="bench", batch_size=5000)
        for line in lines:
            bus.publish(topics.RESULTS, line, headers=((topics.HEADER_SOURCE, f"b{attempt}"
                                                        .encode()),))
        consumer.drain(idle_timeout=0)
        assert consumer.stats.results == n, consumer.stats
        bus.close()

    rates = {}
    rates["a"] = best_rate(n, args.repeat, decode)
    gc.disable()
    rates["a_nogc"] = best_rate(n, args.repeat, decode)
    gc.enable()
    rates["b"] = best_rate(n, max(1, args.repeat - 1), sagan)
    rates["n"] = best_rate(n, args.repeat, normalise)
    rates["i"] = best_rate(n, args.repeat, insert_only)
    rates["c"] = best_rate(n, args.repeat, full)
    hops = ready.rows("traceroute_hops") / n
    print(f"(a)  orjson decode only            {rates['a']:>10,.0f} results/s"
          f"   (GC paused: {rates['a_nogc']:,.0f}/s)")
    print(f"(b)  sagan object parse only       {rates['b']:>10,.0f} results/s")
    print(f"(n)  decode + normalise            {rates['n']:>10,.0f} results/s")
    print(f"(i)  ClickHouse inserts only       {rates['i']:>10,.0f} results/s"
          f"   ({rates['i'] * hops:,.0f} hop rows/s, {hops:.1f} rows per result)")
    print(f"(c)  full ingest into chDB         {rates['c']:>10,.0f} results/s")
    print(f"c/a = {rates['c'] / rates['a']:.2f}   (goal >= 0.5)")
    print(f"c/b = {rates['c'] / rates['b']:.2f}   (goal >= 4)")
    print(f"c/a with GC paused in (a) = {rates['c'] / rates['a_nogc']:.2f}")


if __name__ == "__main__":
    main()
