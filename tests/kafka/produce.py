"""A producer process for the fault tests: ``python -m tests.kafka.produce URL N FILE...``.

Publishes the first N results of the files (RIPE Atlas JSON Lines, gzip) to the results
topic, flushing every ``--flush-every`` messages, and prints ``published COUNT`` after each
flush, so the test can act (stop the broker, kill a consumer) at a known point. With
``--poison-every K`` every K-th result is followed by one of a fixed set of bad payloads.
Exit status 0 only if the broker acknowledged every message.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grenswacht.files import read_results
from schemas.bus import open_bus
from schemas.topics import HEADER_ORIGIN, HEADER_SOURCE, RESULTS

POISON = (
    b"\x00\x01 not json at all \xff",
    b'{"type": "traceroute", "msm_id": "not-a-number"',
    b'["a JSON array", "not a result"]',
    b'{"type": "sslcert", "msm_id": 1, "prb_id": 2, "timestamp": 1700000000}',
    b'{"fw": 5020, "msm_id": 5001, "prb_id": 9, "type": "traceroute"}',
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--flush-every", type=int, default=1000)
    parser.add_argument("--poison-every", type=int, default=0)
    args = parser.parse_args(argv)
    bus = open_bus(args.url, delivery_timeout_ms=180_000)
    published = poison = 0
    try:
        for path in args.files:
            for record in read_results(path):
                if published >= args.count:
                    break
                bus.publish(RESULTS, record.value, key=record.key, headers=record.headers)
                published += 1
                if args.poison_every and published % args.poison_every == 0:
                    bad = POISON[poison % len(POISON)]
                    bus.publish(RESULTS, bad, key=b"poison",
                                headers=[(HEADER_SOURCE, b"file"),
                                         (HEADER_ORIGIN, f"poison:{poison}".encode())])
                    poison += 1
                if published % args.flush_every == 0:
                    bus.flush()
                    print(f"published {published} poison {poison}", flush=True)  # noqa: T201
        bus.flush()
        print(f"done {published} poison {poison}", flush=True)  # noqa: T201
    finally:
        bus.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
