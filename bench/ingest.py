"""Ingest and analysis benchmark on real bulk traceroutes, every rate measured in one run.

    python bench/ingest.py [PATH.jsonl.gz] [--limit N] [--repeat R] [--analyse N]
                           [--apps-rows N]

Rates (results/s; each the best of ``--repeat`` attempts; the attempts of rates that are
compared run back to back, in pairs, and each ratio is also given per pair):

* (a) orjson decode only; (b) ripe-atlas-sagan object parse only;
* (L) ClickHouse's own limit: the JSON lines of the results (as the sink sends them,
  prepared beforehand) inserted as ``JSONEachRow`` into ``traceroute_input`` (Null) and
  exploded by its materialized view into ``traceroute_hops`` — no Python in the loop;
* (c) the ingest, rows only: memory bus -> ingest consumer (decode, check, explode in
  ClickHouse or normalise, raw_results) -> chDB, committed;
* (v) the ingest with verdicts and findings: (c) plus ``consumers.analysis.analyse_windows``
  over the windows it touched (``grenswacht ingest``'s work), on the first ``--analyse``
  results (the analysis is per window, so a smaller input is enough for its rate); the
  probes of ``--home`` (default KW, the input's own country) are the home vantage points
  and every target of the input is an application, so application verdicts are written.

Printed: c/L, v/L, c/b, c/a; the ``grenswacht apps`` query (``consumers.current``) on a
store of ``--apps-rows`` hop rows (real rows replayed with shifted timestamps and
measurement ids, with the analysed verdict rows replayed alike); the process's peak RSS.
The machine is shared: note ``uptime`` with the figures.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from ripe.atlas.sagan import Result  # noqa: E402

from consumers.analysis import analyse_windows, result_window  # noqa: E402
from consumers.claim_tables import load_claim_tables  # noqa: E402
from consumers.current import current_applications  # noqa: E402
from consumers.enrich import open_enricher  # noqa: E402
from consumers.home import VerdictSettings  # noqa: E402
from consumers.ingest import IngestConsumer, gc_paused  # noqa: E402
from consumers.pipeline import AnalysisContext  # noqa: E402
from consumers.storage import Storage, open_storage  # noqa: E402
from grenswacht.settings import Settings  # noqa: E402
from schemas import topics  # noqa: E402
from schemas.bus import open_bus  # noqa: E402
from schemas.explode import INPUT_FORMAT, INPUT_SETTINGS, INPUT_TABLE, explode_into  # noqa: E402
from schemas.normalize import TABLE_COLUMNS, RowBatch, normalize_into  # noqa: E402

SHARED_ATLAS = Path(os.environ.get("GRENSWACHT_SHARED_ATLAS", ROOT.parent / "shared/data/atlas"))
DEFAULT = SHARED_ATLAS / "bulk/menog_internet_study/traceroute_src_KW.jsonl.gz"
STORED = ("raw_results", "traceroute_hops", "dns_answers", "ping_results", "mda_links",
          "dead_letters", "hop_verdicts", "path_verdicts", "application_verdicts", "findings")


CPU: list[tuple[str, float, float]] = []
"""(label, wall s, CPU s of the whole process: every thread, ClickHouse's included) of
every timed attempt."""


def timed(work: Callable[[], object], label: str = "") -> float:
    started, cpu = time.perf_counter(), time.process_time()
    work()
    wall = time.perf_counter() - started
    CPU.append((label, wall, time.process_time() - cpu))
    return wall


def cpu_of(label: str) -> float:
    """The least CPU time of the attempts of ``label`` (what the work costs, whatever else
    runs on the machine)."""
    return min(cpu for name, _, cpu in CPU if name == label)


def empty(storage: Storage) -> None:
    for table in STORED:
        storage.command(f"TRUNCATE TABLE {table}")


def ingest(storage: Storage, lines: list[bytes], name: str) -> IngestConsumer:
    bus = open_bus(f"memory://bench-{name}")
    consumer = IngestConsumer(bus, storage, group="bench", batch_size=5000)
    for line in lines:
        bus.publish(topics.RESULTS, line, headers=((topics.HEADER_SOURCE, b"bench"),))
    consumer.drain(idle_timeout=0)
    bus.close()
    return consumer


def pairs(label: str, first: Callable[[int], float], second: Callable[[int], float],
          repeat: int) -> tuple[float, float, list[float]]:
    """Best time of each of two works run back to back ``repeat`` times, and the ratio
    first/second of each pair (times, so a ratio > 1 means the second is faster)."""
    a, b = [], []
    for attempt in range(repeat):
        a.append(first(attempt))
        b.append(second(attempt))
        print(f"  pair {attempt + 1} {label}: {a[-1]:.2f} s / {b[-1]:.2f} s", flush=True)
    return min(a), min(b), [x / y for x, y in zip(a, b, strict=True)]


def retimed(line: bytes, index: int) -> bytes:
    """``line`` with its timestamp moved into the first hour of 2020 (one analysis window),
    distinct per result: a dense deployment's window, from the same real traceroutes."""
    result = orjson.loads(line)
    result["timestamp"] = 1_577_836_800 + index % 3600
    result["msm_id"] = int(result["msm_id"]) + 10**9 * (index // 3600 + 1)
    return orjson.dumps(result)


def replay_store(storage: Storage, hop_rows: int) -> dict[str, int]:
    """Grow the store to ``hop_rows`` hop rows by replaying what it holds: copies with
    timestamps shifted by whole weeks (and measurement ids by 10^9 per copy); the analysed
    rows (path and application verdicts) are replayed alike, so the verdict tables grow
    with the measurements as they would."""
    have = int(storage.query("SELECT count() FROM traceroute_hops").rows[0][0])
    copies = max(0, -(-hop_rows // max(have, 1)) - 1)
    moments = {"traceroute_hops": "timestamp", "path_verdicts": "window_start",
               "application_verdicts": "window_start"}
    for table, moment in moments.items():
        names = [row[0] for row in storage.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND "
            "table = {t:String} AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')",
            {"t": table}).rows]
        storage.command("CREATE TABLE bench_seed ENGINE = MergeTree ORDER BY tuple() "  # noqa: S608
                        f"AS SELECT * FROM {table}")
        for copy in range(1, copies + 1):
            seconds = 7 * 86400 * copy
            moved = {column: f"{column} + toIntervalSecond({seconds})"
                     for column in (moment, "window_end", "period_start", "period_end")
                     if column in names}
            if "measurement_id" in names:
                moved["measurement_id"] = f"measurement_id + {copy * 10**9}"
            select = ", ".join(moved.get(name, name) for name in names)
            storage.command(f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608
                            f"SELECT {select} FROM bench_seed")
        storage.command("DROP TABLE bench_seed")
    return {table: int(storage.query(f"SELECT count() FROM {table}").rows[0][0])  # noqa: S608
            for table in moments}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--limit", type=int, default=20_000, help="results to use")
    parser.add_argument("--repeat", type=int, default=3, help="attempts per rate")
    parser.add_argument("--analyse", type=int, default=2_000,
                        help="results ingested and analysed for (v)")
    parser.add_argument("--home", default="KW",
                        help="home country: its probes' paths make the application verdicts "
                             "(each target of the input is an application)")
    parser.add_argument("--apps-rows", type=int, default=10_000_000,
                        help="hop rows of the store the apps query runs on (0: skip)")
    args = parser.parse_args()
    logging.getLogger("ripe.atlas.sagan").setLevel(logging.ERROR)  # per-hop warnings
    with gzip.open(args.path, "rb") as handle:
        lines = [line.rstrip(b"\n") for _, line in zip(range(args.limit), handle,
                                                        strict=False)]
    n = len(lines)
    print(f"{n:,} results from {args.path.name}, {sum(map(len, lines)) / n:,.0f} bytes each"
          f"; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    storage = open_storage(f"chdb://{tempfile.mkdtemp(prefix='gw-bench-')}")
    prepared = RowBatch()
    with gc_paused():
        for line in lines:
            explode_into(orjson.loads(line), prepared, source="bench", payload=line)
    json_lines = [row[0] for row in prepared.tables[INPUT_TABLE]]
    hop_rows = sum(prepared.exploded_rows)
    print(f"{len(json_lines):,} of them exploded by ClickHouse, {hop_rows / n:.1f} reply rows "
          "each", flush=True)

    def decode(_: int) -> float:
        def work() -> None:
            for line in lines:  # nothing kept: a kept result would be rescanned by the GC
                orjson.loads(line)

        return timed(work, "a")

    def sagan(_: int) -> float:
        def work() -> None:
            for line in lines:
                Result.get(orjson.loads(line))

        return timed(work, "b")

    def limit(_: int) -> float:
        empty(storage)
        return timed(lambda: storage.insert_lines(INPUT_TABLE, json_lines, fmt=INPUT_FORMAT,
                                                  settings=INPUT_SETTINGS), "L")

    raw_columns = dict(zip(TABLE_COLUMNS["raw_results"], prepared.columns("raw_results"),
                           strict=True))

    def raw_only(_: int) -> float:
        storage.command("TRUNCATE TABLE raw_results")
        return timed(lambda: storage.insert("raw_results", raw_columns), "r")

    def check_only(_: int) -> float:
        decoded = [orjson.loads(line) for line in lines]

        def work() -> None:
            batch = RowBatch()
            with gc_paused():
                for result, line in zip(decoded, lines, strict=True):
                    explode_into(result, batch, source="bench", payload=line)

        return timed(work, "k")

    def normalise_only(_: int) -> float:
        decoded = [orjson.loads(line) for line in lines]

        def work() -> None:
            batch = RowBatch()
            with gc_paused():
                for result, line in zip(decoded, lines, strict=True):
                    normalize_into(result, batch, source="bench", payload=line)

        return timed(work, "n")

    def full(attempt: int) -> float:
        empty(storage)
        seconds = timed(lambda: ingest(storage, lines, f"c{attempt}"), "c")
        stored = int(storage.query("SELECT count() FROM traceroute_hops").rows[0][0])
        assert stored == hop_rows, (stored, hop_rows)
        return seconds

    gc.collect()
    t_a, t_c1, _ = pairs("a/c", decode, full, args.repeat)
    t_b, t_c2, bc = pairs("b/c", sagan, full, max(1, args.repeat - 1))
    t_l, t_c3, lc = pairs("L/c", limit, full, args.repeat)
    t_c = min(t_c1, t_c2, t_c3)
    pairs("r/k", raw_only, check_only, args.repeat)
    pairs("n/k", normalise_only, check_only, 1)

    settings = Settings()
    sample = lines[: args.analyse]
    targets = {str(orjson.loads(line).get("dst_name") or "") for line in lines} - {""}
    enricher, registry = open_enricher(settings.jurisdiction)
    context = AnalysisContext(enricher, registry, {t: [t] for t in sorted(targets)},
                              VerdictSettings(home_countries=[args.home]))
    window_s = settings.analysis.window_s
    started = time.perf_counter()  # the claim dictionaries: once per store, not timed in (v)
    loads = load_claim_tables(storage, enricher.sources)
    print(f"  claim dictionaries loaded in {time.perf_counter() - started:.1f} s "
          f"({sum(load.networks for load in loads):,} networks; bench/claims.py)", flush=True)

    def verdicts(attempt: int) -> float:
        empty(storage)
        windows = {w for w in (result_window(line, window_s) for line in sample)
                   if w is not None}

        def work() -> None:
            ingest(storage, sample, f"v{attempt}")
            analyse_windows(storage, None, context, windows, window_s=window_s)

        return timed(work, "v")

    def sample_limit(_: int) -> float:
        empty(storage)
        part = json_lines[: len(sample)]
        return timed(lambda: storage.insert_lines(INPUT_TABLE, part, fmt=INPUT_FORMAT,
                                                  settings=INPUT_SETTINGS), "Ls")

    t_ls, t_v, lv = pairs("L/v (sample)", sample_limit, verdicts, max(1, args.repeat - 1))
    dense = [retimed(line, i) for i, line in enumerate(sample)]

    def verdicts_dense(attempt: int) -> float:
        empty(storage)
        windows = {w for w in (result_window(line, window_s) for line in dense)
                   if w is not None}

        def work() -> None:
            ingest(storage, dense, f"vd{attempt}")
            analyse_windows(storage, None, context, windows, window_s=window_s)

        return timed(work, "vd")

    t_vd = min(verdicts_dense(attempt) for attempt in range(max(1, args.repeat - 1)))
    print(f"  (v) with the sample in {len({result_window(x, window_s) for x in dense})} "
          f"window(s): {t_vd:.2f} s", flush=True)
    paths = int(storage.query("SELECT count() FROM path_verdicts").rows[0][0])

    rate = {"a": n / t_a, "b": n / t_b, "L": n / t_l, "c": n / t_c,
            "v": len(sample) / t_v, "L_sample": len(sample) / t_ls,
            "vd": len(sample) / t_vd}
    print()
    print(f"(a)  orjson decode only             {rate['a']:>10,.0f} results/s")
    print(f"(b)  sagan object parse only        {rate['b']:>10,.0f} results/s")
    print(f"(L)  ClickHouse explode (JSON lines {rate['L']:>10,.0f} results/s"
          f"   ({rate['L'] * hop_rows / n:,.0f} reply rows/s)")
    print("     -> Null table -> view -> traceroute_hops)")
    print(f"(c)  ingest, rows only              {rate['c']:>10,.0f} results/s")
    print(f"(v)  ingest + verdicts + findings   {rate['v']:>10,.0f} results/s"
          f"   ({len(sample):,} results, {paths:,} path verdicts; L on them: "
          f"{rate['L_sample']:,.0f}/s)")
    print(f"(v') the same, its results in one window {rate['vd']:>7,.0f} results/s"
          f"   ({len(sample) / max(1, len({result_window(x, window_s) for x in sample})):.1f}"
          " results per window in the input)")
    median = statistics.median
    print(f"c/L = {rate['c'] / rate['L']:.2f} (pairs: {median(lc):.2f} median)  goal >= 0.8")
    print(f"v/L = {rate['v'] / rate['L_sample']:.3f} (pairs: {median(lv):.3f} median)"
          "  goal >= 0.5")
    print(f"c/b = {rate['c'] / rate['b']:.2f} (pairs: {median(bc):.2f} median)  goal >= 4")
    print(f"c/a = {rate['c'] / rate['a']:.2f}")
    us = {label: cpu_of(label) / count * 1e6 for label, count in (
        ("a", n), ("b", n), ("L", n), ("c", n), ("r", n), ("k", n), ("n", n),
        ("v", len(sample)), ("Ls", len(sample)), ("vd", len(sample)))}
    print("CPU time per result (all threads of the process; the least of the attempts):")
    print(f"  decode {us['a']:.0f} us, sagan {us['b']:.0f} us, check for the explode "
          f"{us['k']:.0f} us (normalise instead: {us['n']:.0f} us), ClickHouse explode (L) "
          f"{us['L']:.0f} us, raw_results insert {us['r']:.0f} us, ingest (c) {us['c']:.0f} us,"
          f" ingest + analysis (v) {us['v']:.0f} us, (v') {us['vd']:.0f} us")
    print(f"  by CPU: c/L = {us['L'] / us['c']:.2f}, v/L = {us['Ls'] / us['v']:.3f} "
          f"(v'/L = {us['Ls'] / us['vd']:.3f}), "
          f"c/b = {us['b'] / us['c']:.2f}, c/a = {us['a'] / us['c']:.2f}")
    print(f"1 M traceroutes: ingest {1e6 / rate['c'] / 60:.1f} min, ingest + analysis "
          f"{1e6 / rate['v'] / 60:.1f} min at these rates (goal < 5 min)")

    if args.apps_rows:
        empty(storage)
        ingest(storage, sample, "apps")
        windows = {w for w in (result_window(line, window_s) for line in sample)
                   if w is not None}
        analyse_windows(storage, None, context, windows, window_s=window_s)
        sizes = replay_store(storage, args.apps_rows)
        best = min(timed(lambda: current_applications(storage)) for _ in range(3))
        states = current_applications(storage)
        print(f"apps ({len(states)} applications) on {sizes['traceroute_hops']:,} hop rows, "
              f"{sizes['path_verdicts']:,} path and {sizes['application_verdicts']:,} "
              f"application verdict rows: {best * 1000:,.0f} ms (goal < 1 s)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
