"""Ingest through the memory bus into the real chDB engine: rows, idempotency, dead letters."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from consumers.ingest import IngestConsumer
from consumers.storage import Storage
from grenswacht.files import read_results
from schemas import topics
from schemas.bus import open_bus

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
SAGAN_TRACEROUTES = FIXTURES / "traceroute" / "sagan_tests.jsonl"


def ingest_files(storage: Storage, *paths: Path, name: str) -> IngestConsumer:
    bus = open_bus(f"memory://{name}")
    consumer = IngestConsumer(bus, storage, group=name, batch_size=500)
    for path in paths:
        for record in read_results(path):
            bus.publish(topics.RESULTS, record.value, key=record.key, headers=record.headers)
    consumer.drain(idle_timeout=0)
    bus.close()
    return consumer


def count(storage: Storage, sql: str) -> int:
    return int(storage.query(sql).rows[0][0])


def test_traceroute_rows_keep_every_reply_and_feature(storage: Storage) -> None:
    consumer = ingest_files(storage, SAGAN_TRACEROUTES, name="t-features")
    lines = [json.loads(line) for line in SAGAN_TRACEROUTES.read_text().splitlines()]
    replies = sum(len(h.get("result") or [None]) for r in lines for h in r["result"])
    assert consumer.stats.results == len(lines)
    assert count(storage, "SELECT count() FROM traceroute_hops") == replies
    # MPLS label stacks (msm 1000158), late packets (msm 5017), ICMP errors, v6 hops
    assert count(storage, "SELECT count() FROM traceroute_hops WHERE length(mpls_labels) > 0") > 0
    assert count(storage, "SELECT count() FROM traceroute_hops WHERE late_by > 0 "
                          "AND measurement_id = 5017") > 0
    assert count(storage, "SELECT count() FROM traceroute_hops WHERE reply_error = 'H'") > 0
    assert count(storage, "SELECT count() FROM traceroute_hops WHERE address_family = 6") > 0
    assert count(storage, "SELECT count() FROM traceroute_hops WHERE is_timeout") > 0
    assert count(storage, "SELECT count() FROM traceroute_hops WHERE hop_error LIKE "
                          "'connect failed%'") > 0
    first = storage.query(
        "SELECT hop, reply_address, rtt_ms, reply_ttl FROM traceroute_hops "
        "WHERE measurement_id = 1000158 ORDER BY timestamp, hop, reply_index LIMIT 1"
    ).rows[0]
    raw = next(r for r in lines if r["msm_id"] == 1000158)["result"][0]["result"][0]
    assert first == (1, raw["from"], raw["rtt"], raw["ttl"])


def test_tcp_traceroutes_and_dns_features(storage: Storage) -> None:
    ingest_files(storage, FIXTURES / "bulk_samples" / "tcp_traceroutes.jsonl.gz",
                 FIXTURES / "dns" / "sagan_tests.jsonl",
                 FIXTURES / "dns" / "pierky_msm1071935_lroot_nsid.jsonl",
                 FIXTURES / "bulk_samples" / "cloudflare_chaos.jsonl.gz", name="t-dns")
    assert count(storage, "SELECT count() FROM traceroute_hops WHERE protocol = 'TCP'") > 0
    # NSID names the anycast instance of l.root
    assert count(storage, "SELECT uniqExact(probe_id) FROM dns_answers "
                          "WHERE nsid LIKE '%l.root-servers.org'") == 5
    # CHAOS TXT id.server answers name the Cloudflare site
    sites = storage.query("SELECT DISTINCT record_data FROM dns_answers WHERE query_class = 'CH' "
                          "AND record_type = 'TXT' AND measurement_id = 1768147").rows
    assert len(sites) > 3
    # resultset: several responses of one result
    assert count(storage, "SELECT max(response_index) FROM dns_answers") >= 1
    # CNAME hops are rows of their own
    assert count(storage, "SELECT count() FROM dns_answers WHERE record_type = 'CNAME'") > 0
    assert count(storage, "SELECT count() FROM dns_answers WHERE rcode = 'NXDOMAIN'") > 0


def test_second_ingest_adds_no_rows(storage: Storage) -> None:
    files = [SAGAN_TRACEROUTES, FIXTURES / "dns" / "sagan_tests.jsonl",
             FIXTURES / "ping" / "sagan_tests.jsonl"]
    ingest_files(storage, *files, name="t-idem-1")
    tables = ("raw_results", "traceroute_hops", "dns_answers", "ping_results")
    before = {t: count(storage, f"SELECT count() FROM {t} FINAL") for t in tables}
    ingest_files(storage, *files, name="t-idem-2")
    after = {t: count(storage, f"SELECT count() FROM {t} FINAL") for t in tables}
    assert after == before
    assert before["raw_results"] > 0 and before["ping_results"] > 0
    # one raw row per distinct natural key of the input (two hand-edited sagan DNS fixtures
    # share a key: the store keeps one of each pair, as it would for a real re-delivery)
    keys = set()
    for path in files:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            keys.add((r["type"], r["msm_id"], r["prb_id"], r["timestamp"],
                      r.get("dst_name") or r.get("dst_addr") or r.get("addr") or ""))
    assert before["raw_results"] == len(keys)


def test_raw_results_keep_the_payload_verbatim(storage: Storage) -> None:
    ingest_files(storage, SAGAN_TRACEROUTES, name="t-raw")
    line = SAGAN_TRACEROUTES.read_text().splitlines()[4]
    result = json.loads(line)
    stored = storage.query(
        "SELECT payload FROM raw_results WHERE measurement_id = {m:UInt64} AND probe_id = "
        "{p:UInt64} AND timestamp = toDateTime64({t:UInt64}, 3, 'UTC')",
        {"m": result["msm_id"], "p": result["prb_id"], "t": result["timestamp"]},
    ).rows
    assert stored == [(line,)]


BAD_LINES = {
    "invalid_json": b'{"type": "traceroute", "msm_id": 1',
    "not_an_object": b"[1, 2, 3]",
    "unsupported_type": b'{"type": "sslcert", "msm_id": 1, "prb_id": 2, "timestamp": 1400000000,'
                        b' "fw": 4700}',
    "missing_key": b'{"type": "traceroute", "prb_id": 2, "timestamp": 1400000000, "fw": 4700, '
                   b'"result": []}',
    "negative_rtt": b'{"type": "traceroute", "msm_id": 9, "prb_id": 2, "timestamp": 1400000000,'
                    b' "fw": 4700, "result": [{"hop": 1, "result": [{"from": "192.0.2.1", '
                    b'"rtt": -3.5, "size": 28, "ttl": 64}]}]}',
    "out_of_range": b'{"type": "traceroute", "msm_id": 9, "prb_id": 3, "timestamp": 1400000000,'
                    b' "fw": 4700, "result": [{"hop": 300, "result": [{"x": "*"}]}]}',
    "unknown_firmware": b'{"type": "ping", "msm_id": 9, "prb_id": 4, "timestamp": 1400000000,'
                        b' "fw": 0}',
}


def test_bad_input_goes_to_dead_letters_and_good_input_survives(
    storage: Storage, tmp_path: Path
) -> None:
    good = SAGAN_TRACEROUTES.read_bytes().splitlines()
    huge = b'{"type": "traceroute", "dst_name": "' + b"x" * 10_000_000 + b'"}'
    lines = [good[0], *BAD_LINES.values(), good[1], huge, good[2]]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    consumer = ingest_files(storage, path, name="t-bad")
    assert consumer.stats.results == 3
    rows = storage.query("SELECT reason, origin, payload_size, length(payload) FROM dead_letters "
                         "ORDER BY origin").rows
    reasons = {r[0] for r in rows}
    assert reasons == set(BAD_LINES) | {"oversized"}
    assert len(rows) == len(BAD_LINES) + 1
    oversized = next(r for r in rows if r[0] == "oversized")
    assert oversized[1] == f"{path}:{len(BAD_LINES) + 3}"
    assert oversized[2] == len(huge) and oversized[3] < len(huge)
    for reason, line in BAD_LINES.items():
        payload = storage.query("SELECT payload FROM dead_letters WHERE reason = {r:String}",
                                {"r": reason}).rows
        assert payload == [(line.decode(),)]
    assert count(storage, "SELECT count() FROM raw_results") == 3


def test_truncated_gzip_keeps_what_was_read(storage: Storage, tmp_path: Path) -> None:
    source = FIXTURES / "bulk_samples" / "menog_ae.jsonl.gz"
    data = source.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    consumer = ingest_files(storage, cut, name="t-trunc")
    assert 0 < consumer.stats.results < 300
    (reason, origin, detail), = storage.query(
        "SELECT reason, origin, detail FROM dead_letters").rows
    assert reason == "truncated_input"
    assert origin == f"{cut}:{consumer.stats.results + 1}"
    assert f"after line {consumer.stats.results}" in detail
    assert count(storage, "SELECT count() FROM raw_results") == consumer.stats.results


def test_json_array_and_api_page_files(storage: Storage, tmp_path: Path) -> None:
    lines = [orjson.loads(x) for x in SAGAN_TRACEROUTES.read_bytes().splitlines()[:5]]
    (tmp_path / "array.json").write_bytes(orjson.dumps(lines, option=orjson.OPT_INDENT_2))
    with gzip.open(tmp_path / "page.json.gz", "wb") as handle:
        handle.write(orjson.dumps({"count": 2, "next": None, "results": lines[3:]}))
    consumer = ingest_files(storage, tmp_path / "array.json", tmp_path / "page.json.gz",
                            name="t-array")
    assert consumer.stats.results == 7
    assert count(storage, "SELECT count() FROM raw_results FINAL") == 5


def test_dead_letters_are_published_on_their_topic(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(BAD_LINES["negative_rtt"] + b"\n")
    watcher = open_bus("memory://t-dlq")
    watcher.subscribe([topics.DEAD_LETTERS], "watch")
    ingest_files(storage, path, name="t-dlq")
    (message,) = watcher.poll(timeout=1)
    record = orjson.loads(message.value)
    assert record["reason"] == "negative_rtt"
    assert record["origin"] == f"{path}:1"
    assert record["topic"] == topics.RESULTS


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_menog_bulk_file_ingests_without_dead_letters(storage: Storage, shared_atlas: Path) -> None:
    path = shared_atlas / "bulk" / "menog_internet_study" / "traceroute_src_PS.jsonl.gz"
    consumer = ingest_files(storage, path, name="t-menog")
    assert consumer.stats.dead_letters == 0
    with gzip.open(path) as handle:
        assert consumer.stats.results == sum(1 for _ in handle)
