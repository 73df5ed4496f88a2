"""Differential test: our normaliser against ripe-atlas-sagan, the reference parser, on every
result of the real corpus (fixtures here; the ~100,000 bulk results from ../shared)."""

from __future__ import annotations

import gzip
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from ripe.atlas.sagan import Result

from schemas.errors import ResultError
from schemas.normalize import RowBatch, normalize_into

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def _r3(value: Any) -> Any:
    return None if value is None else round(value, 3)


def compare_traceroute(raw: dict[str, Any], parsed: Any, rows: list[dict[str, Any]]) -> None:
    first = rows[0]
    assert first["measurement_id"] == parsed.measurement_id
    assert first["probe_id"] == parsed.probe_id
    assert first["firmware"] == parsed.firmware
    assert first["address_family"] == (parsed.af or 0)
    assert first["destination_address"] == (parsed.destination_address or "")
    assert first["source_address"] == (parsed.source_address or "")
    assert first["paris_id"] == parsed.paris_id
    assert first["protocol"] == (parsed.protocol or "")
    by_hop: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_hop[row["hop"]].append(row)
    assert len(by_hop) == len(parsed.hops)
    for hop in parsed.hops:
        ours = by_hop[hop.index if hop.index is not None else 0]
        if hop.is_error:
            assert all(r["hop_error"] == hop.error_message for r in ours)
        replies = [r for r in ours if not (r["hop_error"] and r["reply_address"] == ""
                                             and not r["is_timeout"] and r["rtt_ms"] is None
                                             and r["size"] is None)]
        # sagan leaves out late packets; we keep them, flagged
        ours_in_time = [r for r in replies if r["late_by"] == 0]
        assert len(ours_in_time) == len(hop.packets), (hop.index, ours_in_time, hop.packets)
        for mine, packet in zip(ours_in_time, hop.packets, strict=True):
            assert (mine["reply_address"] or None) == packet.origin
            assert _r3(mine["rtt_ms"]) == packet.rtt
            assert mine["size"] == packet.size
            assert mine["reply_ttl"] == packet.ttl
            assert (mine["inner_ttl"] if mine["inner_ttl"] is not None else 1) == (
                packet.internal_ttl)
            assert mine["mtu"] == packet.mtu
            assert bool(mine["reply_error"]) == packet.is_error
            if packet.icmp_header is not None:
                labels = [m["label"] for o in packet.icmp_header.objects for m in o.get("mpls", [])]
                assert mine["mpls_labels"] == labels


def _dns_name(name: Any) -> str:
    return str(name or "").rstrip(".").lower()


def compare_dns(raw: dict[str, Any], parsed: Any, rows: list[dict[str, Any]]) -> None:
    by_response: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_response[row["response_index"]].append(row)
    if not parsed.responses:
        # a result that is only an error (timeout): sagan has no response, we keep the error
        assert parsed.is_error
        assert [r["response_error"] != "" for r in rows] == [True]
        return
    assert len(by_response) == len(parsed.responses)
    for index, response in enumerate(parsed.responses):
        ours = by_response[index]
        assert _r3(ours[0]["response_time_ms"]) == response.response_time
        assert ours[0]["resolver_address"] == (response.destination_address or
                                               raw.get("dst_addr") or raw.get("dst_name") or "")
        if response.abuf is None or response.abuf.is_error:
            continue
        # unknown types: we write the RFC 3597 form TYPE65280, sagan writes 65280
        theirs = sorted((_dns_name(a.name), f"TYPE{a.type}" if str(a.type).isdigit() else a.type)
                        for a in response.abuf.answers)
        mine = sorted((_dns_name(r["record_name"]), r["record_type"])
                      for r in ours if r["section"] == "answer")
        assert mine == theirs
        header = response.abuf.header
        assert ours[0]["rcode"] == header.return_code
        if response.abuf.edns0 is not None:
            nsid = [o.nsid for o in response.abuf.edns0.options if o.nsid]
            if nsid:
                assert ours[0]["nsid"] == nsid[0]


def compare_ping(raw: dict[str, Any], parsed: Any, rows: list[dict[str, Any]]) -> None:
    (row,) = rows
    assert row["packets_sent"] == (parsed.packets_sent or 0)
    assert row["packets_received"] == (parsed.packets_received or 0)
    for mine, theirs in ((row["rtt_min_ms"], parsed.rtt_min), (row["rtt_max_ms"], parsed.rtt_max)):
        assert _r3(mine) == (None if theirs in (None, -1) else _r3(theirs))


COMPARE = {
    "traceroute": ("traceroute_hops", compare_traceroute),
    "dns": ("dns_answers", compare_dns),
    "ping": ("ping_results", compare_ping),
}


def check_file(path: Path) -> dict[str, int]:
    counts = {"agreed": 0, "both_refused": 0}
    for number, line in _lines(path):
        raw = orjson.loads(line)
        parsed = Result.get(raw)
        batch = RowBatch()
        try:
            kind = normalize_into(raw, batch, source="test")
        except ResultError as exc:
            # we refuse exactly what sagan calls malformed (not merely "error": a timeout
            # or an ICMP error is a measurement, and we keep it)
            assert parsed.is_malformed, f"{path.name}:{number} refused: {exc}"
            counts["both_refused"] += 1
            continue
        assert not parsed.is_malformed, f"{path.name}:{number} sagan: malformed, we: accepted"
        table, compare = COMPARE[kind]
        try:
            compare(raw, parsed, batch.as_dicts(table))
        except AssertionError as exc:
            raise AssertionError(f"{path.name}:{number}: {exc}") from exc
        counts["agreed"] += 1
    return counts


FIXTURE_FILES = sorted(
    p for folder in ("traceroute", "dns", "ping", "malformed", "bulk_samples")
    for p in (FIXTURES / folder).glob("*.jsonl*")
)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_file_agrees_with_sagan(path: Path) -> None:
    counts = check_file(path)
    assert counts["agreed"] + counts["both_refused"] > 0


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_whole_bulk_corpus_agrees_with_sagan(shared_atlas: Path) -> None:
    files = sorted((shared_atlas / "bulk").rglob("*.jsonl.gz"))
    assert files, "no bulk files"
    total = 0
    for path in files:
        counts = check_file(path)
        assert counts["both_refused"] == 0, path
        total += counts["agreed"]
    assert total > 100_000
