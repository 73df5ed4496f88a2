"""Real DNS answers -> addresses at the end of the CNAME chain, per vantage point, and the
provider the chain names (the legal axis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from consumers.addresses import AddressMap
from consumers.enrich import Enricher, VantageRegistry
from consumers.enrich.cname import default_suffixes, named_operator, resolutions
from consumers.enrich.legal import default_operators
from consumers.enrich.window import TracedPath, hop_stage, paths_from_rows
from consumers.pipeline import AnalysisContext
from consumers.verdicts import US_OPERATED_IN_EU, classify_path
from schemas.normalize import normalize
from tests.enrich.conftest import ATLAS, read_results

CHAINS = Path(__file__).resolve().parent.parent / "fixtures" / "verdicts" / (
    "bigquery_abuf_cname_chains.jsonl")


def dns_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for result in lines for row in normalize(result).as_dicts("dns_answers")]


def sagan(line: int) -> dict[str, Any]:
    text = (ATLAS / "dns" / "sagan_tests.jsonl").read_text().splitlines()[line - 1]
    return dict(json.loads(text))


def test_the_addresses_are_those_at_the_end_of_the_chain() -> None:
    # RIPE Atlas msm 1687656, probe 13330: tt01.ripe.net CNAME ntp.ripe.net A 193.0.0.229;
    # the A/AAAA of pri.authdns.ripe.net in the additional section are glue, not answers
    (found,) = resolutions(dns_rows([sagan(12)]))
    assert found.chain == ("tt01.ripe.net", "ntp.ripe.net")
    assert found.addresses == {"193.0.0.229"} and found.vantage_key == "atlas:13330"
    assert named_operator(found.chain, default_suffixes(), default_operators()) is None
    # msm 2439409 (a resultset of two responses): a CNAME without the target's addresses
    yahoo = resolutions(dns_rows([sagan(35)]))
    assert {r.chain for r in yahoo} == {("www.yahoo.com", "fd-fp3.wg1.b.yahoo.com")}
    assert all(not r.addresses for r in yahoo) and len(yahoo) == 2


def test_a_cname_into_a_provider_names_it() -> None:
    lines = [json.loads(line) for line in CHAINS.read_text().splitlines()]
    found = {(r.hostname, r.timestamp): r for r in resolutions(dns_rows(lines))}
    bbc = [r for (name, _t), r in found.items() if name == "www.bbc.co.uk"]
    assert {r.chain[-1] for r in bbc} == {"bbc.map.fastly.net"}
    assert set().union(*(r.addresses for r in bbc)) == {
        "151.101.0.81", "151.101.64.81", "151.101.128.81", "151.101.192.81",
        "151.101.132.81"}
    fastly = named_operator(bbc[0].chain, default_suffixes(), default_operators())
    assert fastly is not None and (fastly.operator, fastly.country) == ("Fastly", "US")
    assert "*.fastly.net" in fastly.basis and "grenswacht-cname-suffixes" in fastly.basis
    (apple,) = [r for (name, _t), r in found.items() if name == "www.apple.com"]
    assert apple.chain == ("www.apple.com", "www.apple.com.edgekey.net",
                           "www.apple.com.edgekey.net.globalredir.akadns.net",
                           "e6858.dsce9.akamaiedge.net")
    assert apple.addresses == {"23.216.202.232"}
    akamai = named_operator(apple.chain, default_suffixes(), default_operators())
    assert akamai is not None and akamai.parent == "Akamai Technologies, Inc."
    assert akamai.cloud_act and "edgekey.net" in akamai.basis


def test_the_mapping_is_per_vantage_point_and_feeds_the_legal_axis(
    enricher_and_registry: tuple[Enricher, VantageRegistry],
) -> None:
    lines = [json.loads(line) for line in CHAINS.read_text().splitlines()]
    apps = {"BBC": ["www.bbc.co.uk"], "RIPE NTP": ["193.0.0.229"]}
    mapping = AddressMap(apps, resolutions(dns_rows(lines)), default_suffixes(),
                         default_operators())

    def path(probe: int, address: str, name: str = "") -> TracedPath:
        return TracedPath("atlas", 1, probe, 1_400_000_000, "", address, name, "")

    assert mapping.applications_of(path(13330, "151.101.0.81")) == ("BBC",)
    assert mapping.applications_of(path(6012, "151.101.0.81")) == ()  # not its answer
    assert mapping.applications_of(path(6012, "193.0.0.229")) == ("RIPE NTP",)  # a literal
    assert mapping.applications_of(path(6012, "198.51.100.7", "www.bbc.co.uk.")) == ("BBC",)
    named = mapping.named_operator(path(13330, "151.101.0.81"))
    assert named is not None and named.operator == "Fastly"
    assert mapping.chains_for("atlas:13330", ["www.bbc.co.uk"])[0].chain_text == (
        "www.bbc.co.uk -> www.bbc.co.uk.pri.bbc.co.uk -> bbc.map.fastly.net")
    # an operator the address sources know only by registration gives way to the named one
    enricher, registry = enricher_and_registry
    wikipedia = [r for r in read_results("pierky_msm1033154_wikipedia_esams.jsonl")
                 if r["prb_id"] == 3161][0]
    rows = normalize(wikipedia).as_dicts("traceroute_hops")
    (stage,) = hop_stage(paths_from_rows(rows), enricher, registry)
    assert stage.destination.legal.confidence == "low"
    verdict = classify_path([], stage.destination, named_operator=named)
    assert verdict.verdict == US_OPERATED_IN_EU
    assert verdict.destination.legal.operator == "Fastly" and "Fastly" in verdict.why
    # the dataset version of the suffix table is recorded with the verdicts
    versions = AnalysisContext(enricher, registry).dataset_versions()
    assert versions["grenswacht-cname-suffixes"] == default_suffixes().version
