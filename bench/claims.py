"""Bench of the geo claims in ClickHouse (``consumers/claim_tables.py``), in ONE process on a
fresh chDB store: (1) the load of the ip_trie dictionaries per source (rows, seconds; for
geoip2fast also its parts: making the CIDRs in Python, inserting, building the
dictionaries), and a second load (skipped: same dataset versions); (2) claims/s of
``claims_from_clickhouse`` against the Python ``Enricher.claims`` (empty cache) on the
distinct reply and destination addresses of the shared corpus's traceroutes, and on 100,000
random public addresses; the answers are compared, every one.

    .venv/bin/python bench/claims.py [ATLAS_DIR]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

from consumers.claim_tables import _tables, claims_from_clickhouse, load_claim_tables
from consumers.enrich import Enricher, JurisdictionSettings, open_enricher
from consumers.enrich.geo import Geoip2FastSource, is_public
from consumers.storage import open_storage
from tests.consumers.test_claim_tables import _addresses

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = Path(os.environ.get("GRENSWACHT_SHARED_ATLAS", ROOT.parent / "shared" / "data" / "atlas"))
ENRICH = ROOT / "tests" / "fixtures" / "enrich"


def _random_public(count: int, seed: int = 17) -> list[str]:
    import ipaddress

    rnd = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        if len(out) % 5:
            address = str(ipaddress.IPv4Address(rnd.getrandbits(32)))
        else:
            address = str(ipaddress.IPv6Address((0x2 << 124) | rnd.getrandbits(124)))
        if is_public(address):
            out.append(address)
    return out


def _compare(storage: object, enricher: Enricher, addresses: list[str], label: str) -> None:
    started = time.perf_counter()
    got = claims_from_clickhouse(storage, addresses, enricher.sources)
    clickhouse = time.perf_counter() - started
    fresh = Enricher(enricher.sources, enricher.operators)
    started = time.perf_counter()
    want = {a: fresh.claims(a) for a in addresses}
    python = time.perf_counter() - started
    wrong = sum(1 for a in addresses if a in got and got[a] != want[a])
    print(f"  {label}: {len(addresses)} addresses, {len(got)} answered by ClickHouse, "
          f"{wrong} different | ClickHouse {len(addresses) / clickhouse:,.0f}/s "
          f"({clickhouse:.2f} s), Python {len(addresses) / python:,.0f}/s ({python:.2f} s), "
          f"ratio {python / clickhouse:.1f}x")


def main() -> None:
    atlas = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    storage = open_storage(f"chdb://{tempfile.mkdtemp(prefix='gw-bench-claims-')}")
    settings = JurisdictionSettings(
        aws_ip_ranges=ENRICH / "aws_ip_ranges_sample.json",
        azure_service_tags=ENRICH / "azure_service_tags_sample.json",
        gcp_cloud_json=ENRICH / "gcp_cloud_sample.json")
    enricher = open_enricher(settings)[0]
    geo = next(s for s in enricher.sources if isinstance(s, Geoip2FastSource))
    started = time.perf_counter()
    made = sum(1 for _ in geo.country_networks()) + sum(1 for _ in geo.as_networks())
    making = time.perf_counter() - started
    print("load into a fresh store:")
    for load in load_claim_tables(storage, enricher.sources):
        print(f"  {load.source}: {load.networks:,} networks in {load.seconds:.2f} s")
    building = 0.0
    for table in _tables(geo):
        started = time.perf_counter()
        storage.command(f"SYSTEM RELOAD DICTIONARY {table}_dict")
        building += time.perf_counter() - started
    print(f"  geoip2fast parts: CIDRs made in Python {made:,} in {making:.2f} s; the two "
          f"dictionaries built from their tables in {building:.2f} s (also the first "
          "query's cost after a restart); the rest is the insert")
    started = time.perf_counter()
    again = load_claim_tables(storage, enricher.sources)
    print(f"  second load: {sum(1 for x in again if x.loaded)} sources loaded, "
          f"{time.perf_counter() - started:.3f} s")
    print("claims/s (one process, the same sources: cloud range fixtures + geoip2fast):")
    corpus = sorted(set(_addresses(atlas))) if atlas.is_dir() else []
    if corpus:
        _compare(storage, enricher, corpus, "corpus reply+destination addresses")
    _compare(storage, enricher, _random_public(100_000), "random public addresses")


if __name__ == "__main__":
    main()
