"""Differential test: the geo claims ClickHouse's ip_trie dictionaries give
(consumers/claim_tables.py) against the Python sources (``Enricher.claims``), address for
address: every reply and destination address of the traceroutes in tests/fixtures and, when
present, the shared corpus (../shared/data/atlas); random public addresses; the edges of
geoip2fast's ranges. Sources: geoip2fast (bundled), the cloud range fixtures and two mmdb
files written here.

The tables are loaded once into the session's store (the ``storage`` fixture does not empty
them): a fresh store pays ~10 s for geoip2fast (docs/performance.md)."""

from __future__ import annotations

import datetime as dt
import gzip
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netaddr
import orjson
import pytest
from mmdb_writer import MMDBWriter

from consumers import claim_tables
from consumers.claim_tables import (
    LEDGER,
    claims_from_clickhouse,
    forget_loaded,
    load_claim_tables,
    prime_enricher,
)
from consumers.enrich import Enricher, JurisdictionSettings, open_enricher
from consumers.enrich.geo import Geoip2FastSource, is_public
from consumers.ingest import IngestConsumer
from consumers.pipeline import AnalysisContext, analyse_rows, read_input
from consumers.storage import Storage
from consumers.verdict_tables import hop_columns, path_columns
from grenswacht.files import read_results
from schemas import topics
from schemas.bus import open_bus

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ENRICH = FIXTURES / "enrich"


def _write_mmdb(folder: Path) -> list[Path]:
    city = MMDBWriter(ip_version=6, database_type="GeoLite2-City", ipv4_compatible=True)
    city.insert_network(netaddr.IPSet(["145.100.0.0/15"]), {
        "country": {"iso_code": "NL"}, "registered_country": {"iso_code": "NL"},
        "location": {"latitude": 52.35, "longitude": 4.95, "accuracy_radius": 20},
    })
    city.insert_network(netaddr.IPSet(["2001:610::/32"]), {
        "country": {"iso_code": "NL"}, "location": {"latitude": 52.1, "longitude": 5.1},
    })
    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    asn.insert_network(netaddr.IPSet(["145.100.0.0/15", "2001:610::/32"]), {
        "autonomous_system_number": 1103, "autonomous_system_organization": "SURF B.V.",
    })
    asn.insert_network(netaddr.IPSet(["8.8.8.0/24"]), {
        "autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE",
    })
    paths = [folder / "GeoLite2-City-claims.mmdb", folder / "GeoLite2-ASN-claims.mmdb"]
    city.to_db_file(str(paths[0]))
    asn.to_db_file(str(paths[1]))
    return paths


@pytest.fixture(scope="module")
def enricher(tmp_path_factory: pytest.TempPathFactory) -> Enricher:
    """Cloud ranges, two mmdb files and geoip2fast, as ``open_enricher`` orders them."""
    settings = JurisdictionSettings(
        aws_ip_ranges=ENRICH / "aws_ip_ranges_sample.json",
        azure_service_tags=ENRICH / "azure_service_tags_sample.json",
        gcp_cloud_json=ENRICH / "gcp_cloud_sample.json",
        mmdb_paths=_write_mmdb(tmp_path_factory.mktemp("mmdb")),
    )
    return open_enricher(settings)[0]


@pytest.fixture(scope="module")
def loaded(session_storage: Storage, enricher: Enricher) -> Storage:
    load_claim_tables(session_storage, enricher.sources)
    return session_storage


def _addresses(root: Path) -> Iterator[str]:
    """Reply and destination addresses of every traceroute result under ``root``."""
    for path in sorted(root.rglob("*.jsonl*")):
        if "traceroute" not in str(path.relative_to(root)) and "physics" not in path.parts:
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            for line in handle:
                try:
                    result = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(result, dict) or not isinstance(result.get("result"), list):
                    continue
                if isinstance(result.get("dst_addr"), str):
                    yield result["dst_addr"]
                for hop in result["result"]:
                    replies = hop.get("result") if isinstance(hop, dict) else None
                    for reply in replies if isinstance(replies, list) else ():
                        if isinstance(reply, dict) and isinstance(reply.get("from"), str):
                            yield reply["from"]


def _differences(storage: Storage, enricher: Enricher, addresses: list[str]) -> list[str]:
    got = claims_from_clickhouse(storage, addresses, enricher.sources)
    fresh = Enricher(enricher.sources, enricher.operators)  # an empty cache
    covered = [a for a in addresses if a in got]
    assert len(covered) >= 0.99 * len(addresses), "the query must answer nearly all"
    return [f"{a}: {got[a]} != {fresh.claims(a)}" for a in covered if got[a] != fresh.claims(a)]


def test_claims_equal_the_python_sources_on_the_fixture_traceroutes(
        loaded: Storage, enricher: Enricher) -> None:
    addresses = sorted(set(_addresses(FIXTURES)))
    assert len(addresses) > 1000
    assert _differences(loaded, enricher, addresses) == []


@pytest.mark.slow
def test_claims_equal_the_python_sources_on_the_shared_corpus(
        loaded: Storage, enricher: Enricher, shared_atlas: Path) -> None:
    addresses = sorted(set(_addresses(shared_atlas)))
    assert len(addresses) > 5000
    assert _differences(loaded, enricher, addresses) == []


def test_claims_equal_the_python_sources_on_random_addresses_and_range_edges(
        loaded: Storage, enricher: Enricher) -> None:
    rnd = random.Random(17)
    addresses = [str(netaddr.IPAddress(rnd.getrandbits(32))) for _ in range(6000)]
    addresses += [str(netaddr.IPAddress((0x2 << 124) | rnd.getrandbits(124), 6))
                  for _ in range(2000)]
    # both ends of geoip2fast country ranges and AS blocks, and their neighbours
    for table in ("claims_geoip2fast_country", "claims_geoip2fast_asn"):
        for (prefix,) in loaded.query(
                f"SELECT prefix FROM {table} ORDER BY cityHash64(prefix) LIMIT 1500").rows:  # noqa: S608
            network = netaddr.IPNetwork(prefix)
            for value in (network.first - 1, network.first, network.last, network.last + 1):
                if 0 <= value < 1 << (32 if network.version == 4 else 128):
                    addresses.append(str(netaddr.IPAddress(value, network.version)))
    assert _differences(loaded, enricher, sorted(set(addresses))) == []


def test_named_cases_ipv6_private_and_in_no_range(loaded: Storage, enricher: Enricher) -> None:
    gap = _first_gap()
    cases = ["2a05:d018::1", "2a00:1450:4001:80b::200e", "2001:610::1", "145.100.1.1",
             "8.8.8.8", "52.95.110.5", "91.198.174.225", gap, "192.168.1.1", "10.0.0.1",
             "fe80::1", "100.64.0.1", "not-an-address"]
    got = claims_from_clickhouse(loaded, cases, enricher.sources)
    for address in cases:
        assert got[address] == enricher.claims(address), address
    assert got["192.168.1.1"] == got["fe80::1"] == got["not-an-address"] == ()
    sources = [[c.source for c in got[a]] for a in ("2a05:d018::1", "145.100.1.1", "8.8.8.8")]
    assert sources == [["aws-ip-ranges", "geoip2fast"],
                       ["mmdb:GeoLite2-City", "mmdb:GeoLite2-ASN", "geoip2fast"],
                       ["mmdb:GeoLite2-ASN", "geoip2fast"]]
    (claim,) = got[gap]  # in no range: geoip2fast's "not found", no AS, nothing else
    assert (claim.source, claim.country, claim.as_name) == ("geoip2fast", "--", "")
    assert got["91.198.174.225"][-1].as_name == ""


def _first_gap() -> str:
    """A public IPv4 address in no geoip2fast country range."""
    data = Geoip2FastSource().open()._lists()  # noqa: SLF001 - the test reads its ranges
    firsts = [f for chunk in data.mainListFirstIP for f in chunk]
    lengths = [n for chunk in data.mainListNetlength for n in chunk]
    for first, length, following in zip(firsts, lengths, firsts[1:], strict=False):
        end = first + (1 << (32 - length))
        if end < following < 1 << 32 and is_public(str(netaddr.IPAddress(end))):
            return str(netaddr.IPAddress(end))
    raise AssertionError("no gap in geoip2fast's IPv4 ranges")


def test_a_second_load_does_nothing_and_the_ledger_says_what_is_loaded(
        loaded: Storage, enricher: Enricher) -> None:
    again = load_claim_tables(loaded, enricher.sources)
    assert [(load.loaded, load.networks) for load in again] == [(False, 0)] * 4
    rows = dict(loaded.query(f"SELECT source, networks FROM {LEDGER} FINAL").rows)  # noqa: S608
    assert rows["geoip2fast"] > 1_000_000 and rows["cloud-ip-ranges"] > 10
    assert rows["mmdb:GeoLite2-ASN"] == 3  # 145.100.0.0/15, 2001:610::/32, 8.8.8.0/24
    versions = dict(loaded.query(f"SELECT source, version FROM {LEDGER} FINAL").rows)  # noqa: S608
    assert versions["geoip2fast"].startswith(enricher.sources[-1].version)


def test_prime_fills_the_cache_with_what_the_sources_say(loaded: Storage,
                                                         enricher: Enricher) -> None:
    fresh = Enricher(enricher.sources, enricher.operators)
    rows = [{"reply_address": "145.100.1.1", "destination_address": "8.8.8.8"},
            {"near_address": "52.95.110.5", "far_address": "10.0.0.1"}]
    assert prime_enricher(loaded, fresh, rows) == 4
    assert fresh.uncached(["145.100.1.1", "8.8.8.8", "52.95.110.5", "10.0.0.1"]) == []
    assert prime_enricher(loaded, fresh, rows) == 0  # cached: nothing asked
    for address in ("145.100.1.1", "8.8.8.8", "52.95.110.5", "10.0.0.1"):
        assert fresh.claims(address) == Enricher(enricher.sources,
                                                 enricher.operators).claims(address)


def test_a_window_primed_from_clickhouse_gets_the_same_verdicts(storage: Storage) -> None:
    """The pipeline's read_input asks ClickHouse for the window's claims; the verdicts of
    the window equal those of the Python lookups alone, column for column."""
    wikipedia = FIXTURES / "atlas" / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl"
    probes = FIXTURES / "atlas" / "api" / "pierky_msm1033154_probes_api_v2.json"
    bus = open_bus("memory://t-claim-tables")
    for record in read_results(wikipedia):
        bus.publish(topics.RESULTS, record.value, key=record.key, headers=record.headers)
    bus.close()
    IngestConsumer(open_bus("memory://t-claim-tables"), storage,
                   group="ingest").drain(idle_timeout=0)
    ((first, last),) = storage.query(
        "SELECT min(timestamp), max(timestamp) FROM traceroute_hops").rows
    start, end = first - dt.timedelta(hours=1), last + dt.timedelta(hours=1)
    apps = {"wikipedia": ["wikipedia-lb.esams.wikimedia.org"]}
    settings = JurisdictionSettings(atlas_probe_files=[probes])
    primed = AnalysisContext(*open_enricher(settings), apps)
    python = AnalysisContext(*open_enricher(settings), apps, claims_in_clickhouse=False)
    data = read_input(storage, start, end, primed)
    addresses = {reply[2] for row in data.hop_rows for reply in row["replies"] if reply[2]}
    assert len(addresses) > 50
    assert primed.enricher.uncached(addresses) == []  # every one from ClickHouse
    unprimed = read_input(storage, start, end, python)
    assert set(python.enricher.uncached(addresses)) == addresses  # looked up in Python
    mine = analyse_rows(data, primed)
    theirs = analyse_rows(unprimed, python)
    computed = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert len(mine.results) > 10
    assert hop_columns(mine.results, computed) == hop_columns(theirs.results, computed)
    assert path_columns(mine.results, computed, 2) == path_columns(theirs.results, computed, 2)


def _content(storage: Storage) -> list[tuple[Any, ...]]:
    return [storage.query(f"SELECT count(), groupBitXor(cityHash64(*)) FROM {t}").rows[0]  # noqa: S608
            for t in ("claims_geoip2fast_country", "claims_geoip2fast_asn")]


def test_a_fresh_embedded_store_loads_geoip2fast_from_the_cache_byte_for_byte(
        loaded: Storage, enricher: Enricher, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The exported geoip2fast tables are cached as ClickHouse Native files (a fresh store
    then skips the Python export); read back they are the same rows, and a damaged cache
    file is exported again."""
    monkeypatch.setenv("GRENSWACHT_CACHE", str(tmp_path))
    sources = [s for s in enricher.sources if isinstance(s, Geoip2FastSource)]
    exported = _content(loaded)

    def reload() -> None:
        loaded.insert(LEDGER, {"source": ["geoip2fast"], "version": ["stale"], "networks": [0],
                               "seconds": [0.0], "loaded_at": [dt.datetime.now(dt.UTC)]})
        forget_loaded()
        (load,) = load_claim_tables(loaded, sources)
        assert load.loaded and load.networks > 1_000_000

    reload()  # from the source, and written to the cache
    files = sorted((tmp_path / "claims").glob("*.native"))
    assert len(files) == 2 and _content(loaded) == exported

    def no_export(*args: Any) -> int:
        raise AssertionError("exported from the source although cached")

    with monkeypatch.context() as patched:
        patched.setattr(claim_tables, "_from_source", no_export)
        reload()
    assert _content(loaded) == exported
    assert _differences(loaded, enricher, ["145.100.1.1", "8.8.8.8", "2001:610::1"]) == []

    files[0].write_bytes(files[0].read_bytes()[:1000])  # damaged: exported again
    reload()
    assert _content(loaded) == exported
