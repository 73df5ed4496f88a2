"""The legal axis: known operators resolve to their parents; fallbacks say so."""

from __future__ import annotations

import pytest

from consumers.enrich import Enricher, JurisdictionSettings, VantageRegistry, open_enricher
from consumers.enrich.geo import GeoClaim
from consumers.enrich.legal import default_operators, legal_verdict


def test_every_operator_has_a_source_and_a_parent_country() -> None:
    table = default_operators()
    assert table.version
    for op in table.operators:
        assert op.sources, op.id
        assert all(s.startswith("https://") for s in op.sources), op.id
        assert len(op.parent_country) == 2, op.id
        assert op.asns or op.as_names, op.id


@pytest.mark.parametrize(
    ("asn", "parent", "country"),
    [
        (16509, "Amazon.com, Inc.", "US"),
        (8075, "Microsoft Corporation", "US"),
        (15169, "Alphabet Inc.", "US"),
        (13335, "Cloudflare, Inc.", "US"),
        (20940, "Akamai Technologies, Inc.", "US"),
        (54113, "Fastly, Inc.", "US"),
        (32934, "Meta Platforms, Inc.", "US"),
        (14061, "DigitalOcean Holdings, Inc.", "US"),
        (1136, "Koninklijke KPN N.V.", "NL"),
        (24940, "Hetzner Online GmbH", "DE"),
    ],
)
def test_known_asns_resolve_to_parent(asn: int, parent: str, country: str) -> None:
    verdict = legal_verdict([GeoClaim("mmdb:GeoLite2-ASN", "test", asn=asn)], default_operators())
    assert (verdict.parent, verdict.country, verdict.confidence) == (parent, country, "high")
    assert verdict.cloud_act == (country == "US")


def test_european_subsidiary_of_a_us_company_is_us_legal() -> None:
    claim = GeoClaim("geoip2fast", "test", country="NL", as_name="Akamai International B.V.")
    verdict = legal_verdict([claim], default_operators())
    assert verdict.operator == "Akamai" and verdict.country == "US" and verdict.cloud_act
    assert verdict.confidence == "medium"  # matched by AS name, not AS number


@pytest.fixture(scope="module")
def offline() -> tuple[Enricher, VantageRegistry]:
    return open_enricher(JurisdictionSettings())


@pytest.mark.parametrize(
    ("address", "operator", "parent"),
    [
        ("8.8.8.8", "Google", "Alphabet Inc."),
        ("104.16.1.1", "Cloudflare", "Cloudflare, Inc."),
        ("13.107.42.14", "Microsoft", "Microsoft Corporation"),
        ("3.248.0.1", "Amazon Web Services", "Amazon.com, Inc."),  # AWS Dublin
        ("66.220.156.68", "Meta", "Meta Platforms, Inc."),
    ],
)
def test_real_addresses_resolve_offline(
    offline: tuple[Enricher, VantageRegistry], address: str, operator: str, parent: str
) -> None:
    verdict = offline[0].legal(address)
    assert (verdict.operator, verdict.parent, verdict.country) == (operator, parent, "US")
    assert verdict.cloud_act and "geoip2fast" in verdict.basis


def test_unknown_operator_falls_back_to_country_with_low_confidence(
    offline: tuple[Enricher, VantageRegistry],
) -> None:
    verdict = offline[0].legal("193.0.14.129")  # k.root, RIPE NCC: not in the table
    assert verdict.confidence == "low" and verdict.parent == ""
    assert verdict.country and "not in grenswacht-operators" in verdict.basis
    assert offline[0].legal("10.1.2.3").confidence == "none"


def test_cloud_range_match_names_the_operator(cloud_settings: JurisdictionSettings) -> None:
    enricher, _ = open_enricher(cloud_settings)
    verdict = enricher.legal("34.90.0.1")
    assert verdict.operator == "Google" and verdict.confidence == "high"
    assert "published IP ranges" in verdict.basis
