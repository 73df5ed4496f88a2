"""Over the whole real corpus (fixtures + ~100,000 bulk traceroutes): no reply is ever
classified "in the US" when its RTT bound forbids it. Pure Python over the raw results
(min RTT per hop and reply address), no storage involved."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.enrich import Enricher, HopRecord, VantageRegistry
from tests.enrich.conftest import ATLAS


def _results(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)


def _min_rtts(result: dict[str, Any]) -> dict[tuple[int, str], float]:
    found: dict[tuple[int, str], float] = {}
    for hop in result.get("result") or []:
        for reply in hop.get("result") or []:
            address, rtt = reply.get("from"), reply.get("rtt")
            if address and isinstance(rtt, int | float):
                key = (int(hop.get("hop", 0)), address)
                found[key] = min(rtt, found.get(key, rtt))
    return found


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_no_reply_is_us_when_its_rtt_bound_forbids_it(
    shared_atlas: Path, enricher_and_registry: tuple[Enricher, VantageRegistry]
) -> None:
    enricher, registry = enricher_and_registry
    files = sorted((ATLAS / "traceroute").glob("*.jsonl"))
    files += sorted((shared_atlas / "bulk").glob("*/traceroute*.jsonl.gz"))
    verdicts: dict[tuple[str, str, float], tuple[bool, bool, bool]] = {}
    results = replies = bounded = forbidden = corrected = 0
    for path in files:
        for result in _results(path):
            results += 1
            vantage = registry.resolve(int(result["prb_id"]), "", result.get("from") or "")
            for (hop, address), rtt in _min_rtts(result).items():
                replies += 1
                if vantage is None:
                    continue
                key = (vantage.key, address, rtt)
                cached = verdicts.get(key)
                if cached is None:
                    physical = enricher.hop_verdict(HopRecord(address, rtt, vantage, hop)).physical
                    cached = (physical.us_possible is False, physical.is_us,
                              bool(physical.corrections))
                    verdicts[key] = cached
                is_forbidden, is_us, is_corrected = cached
                bounded += 1
                forbidden += is_forbidden
                corrected += is_corrected
                assert not (is_forbidden and is_us), (path.name, result["prb_id"], address, rtt)
    # the corpus is what PROVENANCE.md says it is, and the property was really exercised
    assert results > 100_000 and bounded > 0.9 * replies
    assert forbidden > 100_000 and corrected > 1_000
    print(f"\n{results} results, {replies} hop replies, {bounded} with a vantage position, "
          f"{forbidden} provably not in the US, {corrected} database US claims corrected")
