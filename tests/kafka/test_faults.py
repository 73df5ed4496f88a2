"""Fault tests: real processes, a real broker, >= 20,000 real RIPE Atlas traceroutes.

Each test gets a broker of its own (it may be stopped) and runs the ingest consumer as
``grenswacht consume ingest`` processes with their own chDB directory; results are read
back with ``grenswacht sql --storage chdb:///DIR`` in a fresh process. "Exactly the input"
means: distinct natural keys in ``raw_results`` == distinct results produced, rows after
FINAL == the rows the normaliser makes of the input, and nothing in ``dead_letters``
except the poison we sent.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from grenswacht.files import read_results
from schemas.bus.kafka import committed_offsets, end_offsets
from schemas.normalize import RowBatch, normalize_into
from schemas.topics import RESULTS
from tests.kafka.produce import POISON
from tools.kafka import broker

# the suite's 600 s per test is a hang guard; these wait on conditions with guards of their
# own (STALL_S, CAP_S), so a loaded machine makes them long, never red
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(2 * 1500 + 600)]

COUNT = 20_000
GROUP = "grenswacht-ingest"
ROOT = Path(__file__).resolve().parents[2]
GRENSWACHT = [sys.executable, "-m", "grenswacht.cli"]
# Hang guards, not timing assumptions: a wait fails only when nothing moved at all (offsets,
# the consumer's log) for STALL_S, or after CAP_S in all. A machine three times slower than
# an idle one only makes the waits longer.
STALL_S = 240.0
CAP_S = 1500.0


@pytest.fixture(scope="module")
def bulk_files(shared_atlas: Path) -> list[Path]:
    folder = shared_atlas / "bulk" / "menog_internet_study"
    return [folder / f"traceroute_src_{c}.jsonl.gz" for c in ("KW", "IQ", "PS")]


@pytest.fixture(scope="module")
def expected(bulk_files: list[Path]) -> dict[str, int]:
    """What a perfect ingest of the first COUNT results stores (computed by the normaliser)."""
    batch = RowBatch()
    keys = set()
    seen = 0
    for path in bulk_files:
        for record in read_results(path):
            if seen >= COUNT:
                break
            seen += 1
            result = orjson.loads(record.value)
            keys.add((result["msm_id"], result["prb_id"], result["timestamp"]))
            normalize_into(result, batch, source="file", payload=record.value)
    assert seen == COUNT
    return {"results": len(keys), "hops": batch.rows("traceroute_hops")}


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path / "broker"
    state = broker.start(workdir)
    try:
        yield f"kafka://{state.bootstrap}", workdir
    finally:
        broker.stop(workdir)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["GRENSWACHT_DATA_DIR"] = env.get("GRENSWACHT_DATA_DIR", "/nonexistent-gw-data")
    # a killed member holds its partitions until its session times out: short, but not so
    # short that a loaded machine (a starved heartbeat thread) drops a live member out of
    # the group again and again, so that it never commits
    env["GRENSWACHT_KAFKA__SESSION_TIMEOUT_MS"] = "20000"
    env["GRENSWACHT_KAFKA__HEARTBEAT_INTERVAL_MS"] = "2000"
    return env


def start_consumer(url: str, dsn: str, log: Path, *extra: str,
                   verbose: bool = False) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*GRENSWACHT, *(["-vv"] if verbose else []), "consume", "ingest", "--bus", url,
             "--storage", dsn,
             "--group", GROUP, "--batch-size", "500", *extra],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=_env(),
        )


def start_producer(url: str, files: list[Path], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.kafka.produce", url, str(COUNT), *map(str, files),
         "--flush-every", "1000", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=_env(),
    )


def finish(process: subprocess.Popen[Any], timeout: float = 900) -> str:
    out, _ = process.communicate(timeout=timeout)
    text = out if isinstance(out, str) else (out or b"").decode()
    assert process.returncode == 0, f"exit {process.returncode}:\n{text[-3000:]}"
    return text


def committed(url: str) -> int:
    try:
        return sum(committed_offsets(url, GROUP).values())
    except Exception:  # noqa: BLE001 - broker restarting: no progress to report
        return -1


def _tail(log: Path | None, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log is not None and log.exists() else ""


def _stuck(what: str, process: subprocess.Popen[bytes] | None, log: Path | None) -> str:
    """The failure text for a process that stopped moving: the tail of its log after it
    wrote every thread's stack there (SIGUSR1, grenswacht/cli.py), so the report says where
    it waits."""
    if process is None or process.poll() is not None or log is None:
        return f"{what}\n{_tail(log)}"
    before = _log_size(log)
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while _log_size(log) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the other threads' stacks follow the first
    return f"{what}\n{_tail(log, 12000)}"


def wait_until(done: Callable[[], bool], what: str, *, progress: Callable[[], object],
               alive: subprocess.Popen[bytes] | None = None, log: Path | None = None,
               every: float = 0.25) -> None:
    """Poll ``done`` until it holds; fail if ``alive`` exits, if ``progress()`` (offsets,
    a log's size) stays the same for STALL_S, or after CAP_S."""
    start = moved = time.monotonic()
    seen = progress()
    while not done():
        assert alive is None or alive.poll() is None, (
            f"{what}: the consumer exited with {alive.returncode}\n{_tail(log)}")
        now, current = time.monotonic(), progress()
        if current != seen:
            seen, moved = current, now
        if now - moved >= STALL_S:
            raise AssertionError(_stuck(f"{what}: nothing moved for {STALL_S:.0f} s", alive, log))
        if now - start >= CAP_S:
            raise AssertionError(_stuck(f"{what}: not done after {CAP_S:.0f} s", alive, log))
        time.sleep(every)


def _kill(*processes: subprocess.Popen[Any] | None) -> None:
    """After a failure: kill what still runs, reap it and close its pipes (a pipe left open
    would be a ResourceWarning, an error, in whichever later test collects it)."""
    for process in processes:
        if process is None:
            continue
        if process.poll() is None:
            process.kill()
        process.wait(30)
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM: the member flushes, commits and leaves; it must exit cleanly."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise AssertionError(f"the consumer did not stop on SIGTERM\n{_tail(log)}") from None
    assert process.returncode == 0, f"exit {process.returncode}\n{_tail(log)}"


def drain(url: str, dsn: str, log: Path) -> None:
    """A last consumer, stopped once the group has committed the end of every partition
    (a condition, not an idle time: a stalled fetch on a loaded machine is not the end)."""
    total = sum(end_offsets(url, RESULTS).values())
    process = start_consumer(url, dsn, log)
    try:
        wait_until(lambda: committed(url) >= total, f"draining {total} messages",
                   progress=lambda: (committed(url), _log_size(log)), alive=process, log=log)
    except BaseException:
        _kill(process)
        raise
    stop(process, log)


def sql(dsn: str, query: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*GRENSWACHT, "sql", "--storage", dsn, "--format", "json", query],
        capture_output=True, check=True, cwd=ROOT, env=_env(), timeout=120,
    )
    rows: list[dict[str, Any]] = orjson.loads(done.stdout)
    return rows


def stored(dsn: str) -> dict[str, int]:
    [raw] = sql(dsn, "SELECT count() AS n, uniqExact(measurement_id, probe_id, timestamp) AS k "
                     "FROM raw_results FINAL")
    [hops] = sql(dsn, "SELECT count() AS n FROM traceroute_hops FINAL")
    [dead] = sql(dsn, "SELECT count() AS n FROM dead_letters FINAL")
    return {"results": int(raw["n"]), "distinct": int(raw["k"]), "hops": int(hops["n"]),
            "dead_letters": int(dead["n"])}


def assert_exactly_the_input(dsn: str, expected: dict[str, int]) -> dict[str, int]:
    counts = stored(dsn)
    assert counts["distinct"] == expected["results"], counts
    assert counts["results"] == expected["results"], counts
    assert counts["hops"] == expected["hops"], counts
    return counts


class _Counter:
    """Occurrences of ``marker`` in what ``log`` gains from now on (read incrementally)."""

    def __init__(self, log: Path, marker: bytes) -> None:
        self.log, self.marker, self.found, self.carry = log, marker, 0, b""
        self.offset = _log_size(log)

    def count(self) -> int:
        with self.log.open("rb") as handle:
            handle.seek(self.offset)
            new = handle.read()
        self.offset += len(new)
        text = self.carry + new
        self.found += text.count(self.marker)
        # a marker cut at the end of this read is counted with the next one (the carry is
        # too short to hold a whole one, so nothing is counted twice)
        keep = len(self.marker) - 1
        self.carry = text[-keep:] if keep else b""
        return self.found


def test_kill_9_the_ingest_consumer_five_times(
    own_broker: tuple[str, Path], bulk_files: list[Path], expected: dict[str, int],
    tmp_path: Path,
) -> None:
    url, _ = own_broker
    dsn = f"chdb://{tmp_path / 'chdb'}"
    log = tmp_path / "consumer.log"
    producer = start_producer(url, bulk_files)
    rng = random.Random(20260)  # noqa: S311 - kill timing only
    kills: list[int] = []
    consumer: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(5):
            # conditions, not times: this member has committed past the previous kill (a batch
            # of its own is complete), then it is killed right after the k-th insert of reply
            # rows that follows, before their raw_results rows (a batch may take several
            # inserts, and under load batches are larger)
            previous = kills[-1] if kills else 0
            target = rng.randint(1, 3)
            consumer = start_consumer(url, dsn, log, verbose=True)
            wait_until(partial(lambda past: committed(url) > past, previous),
                       "a first commit of this member",
                       progress=lambda: (committed(url), _log_size(log)), alive=consumer,
                       log=log)
            inserts = _Counter(log, b"rows into traceroute_hops")
            wait_until(partial(lambda seen, k: seen.count() >= k, inserts, target),
                       f"{target} inserts of reply rows", progress=lambda: _log_size(log),
                       alive=consumer, log=log, every=0.02)
            consumer.send_signal(signal.SIGKILL)
            consumer.wait(30)
            kills.append(committed(url))
    except BaseException:  # a failed condition must not leave a member running on
        _kill(consumer, producer)
        raise
    finish(producer)
    drain(url, dsn, log)
    counts = assert_exactly_the_input(dsn, expected)
    assert counts["dead_letters"] == 0
    assert kills == sorted(kills) and kills[0] < kills[-1], kills
    print(f"kill -9 x5 at committed offsets {kills}: {counts}")  # noqa: T201


def test_broker_stop_and_restart_while_producing(
    own_broker: tuple[str, Path], bulk_files: list[Path], expected: dict[str, int],
    tmp_path: Path,
) -> None:
    url, workdir = own_broker
    dsn = f"chdb://{tmp_path / 'chdb'}"
    log = tmp_path / "consumer.log"
    # the consumer is connected before the broker goes (at start it fails fast on purpose)
    started = _Counter(log, b"consume ingest: bus")
    consumer = start_consumer(url, dsn, log)
    wait_until(lambda: started.count() > 0, "the consumer connected",
               progress=lambda: _log_size(log), alive=consumer, log=log)
    producer = start_producer(url, bulk_files)
    try:
        assert producer.stdout is not None
        lines = []
        for line in producer.stdout:
            lines.append(line)
            if line.startswith("published") and int(line.split()[1]) >= 6000:
                break
        assert broker.stop(workdir, timeout=300)
        time.sleep(3)  # the producer and the consumer retry against a dead broker (no assertion)
        broker.start(workdir)
        out = finish(producer)
        assert f"done {COUNT}" in out
        stop(consumer, log)
    except BaseException:
        _kill(consumer, producer)
        raise
    drain(url, dsn, log)
    counts = assert_exactly_the_input(dsn, expected)
    assert counts["dead_letters"] == 0
    print(f"broker restarted after {lines[-1].strip()}: {counts}")  # noqa: T201


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _fill(path: Path) -> None:
    """Use up every free byte of the file system holding ``path`` (disk full). Unbuffered,
    and any OSError means full: a buffered file writes what is left in its buffer again on
    close, and that error (depending on the store's own writes) came out of the test."""
    chunk = b"\0" * (1 << 20)
    try:
        with path.open("wb", buffering=0) as out:
            while True:
                out.write(chunk)
    except OSError:
        pass


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a small tmpfs")
def test_storage_unavailable_for_a_while(
    own_broker: tuple[str, Path], bulk_files: list[Path], expected: dict[str, int],
    tmp_path: Path,
) -> None:
    url, _ = own_broker
    mount = tmp_path / "store"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(mount)], check=True)
    processes: list[subprocess.Popen[Any]] = []
    try:
        dsn = f"chdb://{mount / 'chdb'}"
        log = tmp_path / "consumer.log"
        consumer = start_consumer(url, dsn, log)
        producer = start_producer(url, bulk_files)
        processes += [consumer, producer]
        wait_until(lambda: committed(url) >= 3000, "3,000 results committed",
                   progress=lambda: (committed(url), _log_size(log)), alive=consumer, log=log)
        filler = mount / "filler"
        _fill(filler)  # the store's disk is full: every insert fails
        frozen = committed(url)
        failing = _Counter(log, b"retrying")
        # the consumer meets the full disk and waits on it (twice: not one unlucky insert)
        wait_until(lambda: failing.count() >= 2, "inserts failing on the full disk",
                   progress=lambda: _log_size(log), alive=consumer, log=log)
        during = committed(url)
        filler.unlink()
        finish(producer)
        assert consumer.poll() is None, "the consumer died while storage was unavailable"
        stop(consumer, log)
        drain(url, dsn, log)
        counts = assert_exactly_the_input(dsn, expected)
        # at most the batch in flight when the disk filled up is committed after it
        assert during - frozen <= 1000, (frozen, during)
        print(f"store full at committed {frozen}, {during} while failing: {counts}")  # noqa: T201
    finally:
        _kill(*processes)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_poison_messages_interleaved(
    own_broker: tuple[str, Path], bulk_files: list[Path], expected: dict[str, int],
    tmp_path: Path,
) -> None:
    url, _ = own_broker
    dsn = f"chdb://{tmp_path / 'chdb'}"
    log = tmp_path / "consumer.log"
    consumer = start_consumer(url, dsn, log)
    out = finish(start_producer(url, bulk_files, "--poison-every", "97"))
    poison = int(out.strip().splitlines()[-1].split()[-1])
    assert poison == COUNT // 97
    try:
        wait_until(lambda: committed(url) >= COUNT + poison, "every message committed",
                   progress=lambda: (committed(url), _log_size(log)), alive=consumer, log=log)
    except BaseException:
        _kill(consumer)
        raise
    stop(consumer, log)
    counts = assert_exactly_the_input(dsn, expected)
    assert counts["dead_letters"] == poison
    reasons = sql(dsn, "SELECT reason, count() AS n, countIf(detail != '') AS explained, "
                       "countIf(topic = 'grenswacht.results.v1' AND offset >= 0) AS located "
                       "FROM dead_letters FINAL GROUP BY reason ORDER BY reason")
    assert sum(int(r["n"]) for r in reasons) == poison
    assert all(r["reason"] for r in reasons)
    assert all(int(r["located"]) == int(r["n"]) for r in reasons)
    assert len(reasons) >= 3, reasons  # not one catch-all reason for five kinds of poison
    assert len(POISON) == 5
    print(f"poison {poison}: {reasons}; {counts}")  # noqa: T201


def test_exit_when_idle_returns_once_the_topic_is_drained(
    own_broker: tuple[str, Path], bulk_files: list[Path], tmp_path: Path,
) -> None:
    """``consume ingest --exit-when-idle``, the batch job: it returns by itself, with every
    message stored and committed."""
    url, _ = own_broker
    dsn = f"chdb://{tmp_path / 'chdb'}"
    log = tmp_path / "consumer.log"
    count = 1_000
    out = finish(subprocess.Popen(
        [sys.executable, "-m", "tests.kafka.produce", url, str(count), str(bulk_files[0])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=_env()))
    assert f"done {count}" in out
    process = start_consumer(url, dsn, log, "--exit-when-idle", "2")
    try:
        process.wait(timeout=CAP_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise AssertionError(f"it did not return\n{_tail(log)}") from None
    assert process.returncode == 0, _tail(log)
    assert committed(url) == sum(end_offsets(url, RESULTS).values()) == count
    counts = stored(dsn)
    assert counts["results"] == counts["distinct"] == count and counts["dead_letters"] == 0
