"""Results per second through the real Kafka broker into chDB, versus the memory bus,
measured in the same run on the same real bulk traceroutes.

    python bench/kafka_throughput.py [PATH.jsonl.gz] [--limit N] [--broker-dir DIR]

Starts a broker with tools/kafka/broker.py (or reuses the one in ``--broker-dir``),
publishes N results to the results topic, then consumes them with the ingest consumer
into a fresh chDB store. Prints publish and end-to-end (publish + consume + insert) rates
for ``memory://`` and ``kafka://`` and the kafka/memory ratio. Numbers only compare within
one run: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consumers.ingest import IngestConsumer  # noqa: E402
from consumers.storage import open_storage  # noqa: E402
from grenswacht.files import read_results  # noqa: E402
from schemas import topics  # noqa: E402
from schemas.bus import open_bus  # noqa: E402
from tools.kafka import broker  # noqa: E402

DEFAULT = ROOT.parent / "shared/data/atlas/bulk/menog_internet_study/traceroute_src_KW.jsonl.gz"


def run(url: str, records: list[tuple[bytes, bytes | None, tuple[tuple[str, bytes], ...]]],
        storage_dsn: str, group: str) -> tuple[float, float]:
    """(publish seconds, publish + consume + insert seconds)."""
    store = open_storage(storage_dsn)
    for table in ("raw_results", "traceroute_hops", "dead_letters"):
        store.command(f"TRUNCATE TABLE {table}")
    started = time.perf_counter()
    producer = open_bus(url)
    for value, key, headers in records:
        producer.publish(topics.RESULTS, value, key=key, headers=headers)
    producer.flush()
    published = time.perf_counter() - started
    consumer_bus = producer if url.startswith("memory:") else open_bus(url)
    consumer = IngestConsumer(consumer_bus, store, group=group, batch_size=5000)
    while consumer.stats.results + consumer.stats.dead_letters < len(records):
        consumer.poll_once(timeout=0.5)
        if consumer.sink.messages and len(consumer.sink) + consumer.stats.results >= len(records):
            consumer.flush_and_commit()
    consumer.flush_and_commit()
    total = time.perf_counter() - started
    stored = store.query("SELECT count() FROM raw_results").rows[0][0]
    assert stored == len(records), (stored, len(records))
    consumer_bus.close()
    if consumer_bus is not producer:
        producer.close()
    return published, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--limit", type=int, default=20_000)
    parser.add_argument("--broker-dir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    records: list[tuple[bytes, bytes | None, tuple[tuple[str, bytes], ...]]] = []
    for record in read_results(args.path):
        if len(records) >= args.limit:
            break
        records.append((record.value, record.key, record.headers))
    workdir = args.broker_dir or Path(tempfile.mkdtemp(prefix="gw-bench-kafka-"))
    state = broker.start(workdir)
    dsn = f"chdb://{tempfile.mkdtemp(prefix='gw-bench-chdb-')}"
    try:
        rates = {}
        for name, url in (("memory", f"memory://bench-{uuid.uuid4().hex[:6]}"),
                          ("kafka", f"kafka://{state.bootstrap}")):
            published, total = run(url, records, dsn, f"bench-{uuid.uuid4().hex[:6]}")
            rates[name] = (len(records) / published, len(records) / total)
            print(f"{name:>6}: publish {rates[name][0]:>9,.0f} results/s   "  # noqa: T201
                  f"end to end into chDB {rates[name][1]:>8,.0f} results/s")
        print(f"kafka/memory end to end: {rates['kafka'][1] / rates['memory'][1]:.2f}  "  # noqa: T201
              f"({len(records)} traceroutes from {args.path.name})")
    finally:
        if args.broker_dir is None:
            broker.stop(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
