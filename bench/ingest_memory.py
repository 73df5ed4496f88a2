"""Peak memory of ``grenswacht ingest`` on hostile inputs (issue 12: <= 1 GB on any input).

    python bench/ingest_memory.py [--scale N]

Each input is ingested by ``grenswacht ingest`` in a subprocess of its own, with a fresh
chDB store; the peak RSS is that child's ``ru_maxrss`` (``os.wait4``). The baseline in the
same run is the ingest of a small real file (the engine's own footprint). Inputs:

* a gzip bomb: ``--scale`` GiB of zeros without a newline in one .gz (~1 MB per GiB);
* a gzip bomb of zero-filled 1 MiB lines;
* one line of ``--scale`` GiB streamed through a named pipe (never on disk);
* a JSON array whose second element is ``--scale`` GiB, through a pipe;
* 1,000 results of 999,000 bytes each (every one under the line cap: the batch byte
  bound is what keeps memory flat);
* ``/dev/zero`` (refused: not a regular file).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "atlas" / "traceroute" / "sagan_tests.jsonl"
MIB = 1 << 20


def run(path: Path, store: Path, feed: Callable[[], None] | None = None) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, last line of output) of one ingest."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRENSWACHT_DATA_DIR": str(store / "data")}
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - our own CLI, paths we made
        [sys.executable, "-m", "grenswacht.cli", "ingest", str(path), "--storage",
         f"chdb://{store / 'chdb'}", "-f", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    def feeding() -> None:
        try:
            if feed is not None:
                feed()
        except BrokenPipeError:
            pass  # the reader stopped early (a limit), as it should

    writer = threading.Thread(target=feeding, daemon=True) if feed else None
    if writer:
        writer.start()
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace").strip().splitlines()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    text = "\n".join(output)
    if "[" in text and process.returncode == 0:
        row = json.loads(text[text.index("["):])[0]
        outcome = (f"{row.get('results', 0):,} results, {row.get('dead_letters', 0):,} dead "
                   f"letters {row.get('dead_letter_reasons', '')}")
    else:
        outcome = f"exit {process.returncode}: {(output or [''])[-1][:120]}"
    return time.monotonic() - started, usage.ru_maxrss * 1024, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=4, help="GiB of the bombs and lines")
    args = parser.parse_args()
    gib = args.scale
    with tempfile.TemporaryDirectory(prefix="gw-bench-mem-") as tmp:
        folder = Path(tmp)
        cases: list[tuple[str, Path, Callable[[], None] | None]] = [("baseline: a real file",
                                                                      SAMPLE, None)]
        bomb = folder / "bomb.jsonl.gz"
        with gzip.open(bomb, "wb", compresslevel=9) as out:
            for _ in range(gib * 1024):
                out.write(b"\0" * MIB)
        cases.append((f"gzip bomb, {gib} GiB of zeros, no newline "
                      f"({bomb.stat().st_size / MIB:.1f} MiB)", bomb, None))
        lines = folder / "lines.jsonl.gz"
        with gzip.open(lines, "wb", compresslevel=9) as out:
            for _ in range(gib * 1024):
                out.write(b"\0" * (MIB - 1) + b"\n")
        cases.append((f"gzip bomb, {gib} GiB of 1 MiB zero lines", lines, None))
        pipe = folder / "line.pipe"
        os.mkfifo(pipe)

        def huge_line() -> None:
            with pipe.open("wb") as out:
                out.write(b'{"type":"traceroute","x":"')
                for _ in range(gib * 1024):
                    out.write(b"x" * MIB)
                out.write(b'"}\n')

        cases.append((f"one line of {gib} GiB through a pipe", pipe, huge_line))
        array = folder / "array.pipe"
        os.mkfifo(array)

        def huge_element() -> None:
            with array.open("wb") as out:
                out.write(b"[" + SAMPLE.read_bytes().splitlines()[0] + b',{"type":"dns","x":"')
                for _ in range(gib * 1024):
                    out.write(b"x" * MIB)
                out.write(b'"}]')

        cases.append((f"JSON array with a {gib} GiB element through a pipe", array,
                      huge_element))
        big = folder / "big-results.jsonl"
        head = SAMPLE.read_bytes().splitlines()[0][:-1]
        with big.open("wb") as out:
            for number in range(1000):
                filler = b',"filler":"' + b"f" * (999_000 - len(head) - 40) + b'"'
                unique = head.replace(b'"msm_id":', b'"msm_id":%d' % (number + 1), 1)
                out.write(unique + filler + b"}\n")
        cases.append(("1,000 results of ~1 MB each (each under the cap)", big, None))
        cases.append(("/dev/zero", Path("/dev/zero"), None))
        print(f"{'input':<58} {'seconds':>8} {'peak RSS':>10}  outcome")
        baseline = 0
        for number, (name, path, feed) in enumerate(cases):
            store = folder / f"store-{number}"
            seconds, rss, last = run(path, store, feed)
            baseline = baseline or rss
            print(f"{name:<58} {seconds:8.1f} {rss / MIB:8.0f} MiB  "
                  f"(x{rss / baseline:.2f} of baseline) {last}")


if __name__ == "__main__":
    main()
