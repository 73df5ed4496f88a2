"""Geo sources: the offline default, a real mmdb file, and cloud range files."""

from __future__ import annotations

from pathlib import Path

import netaddr
from mmdb_writer import MMDBWriter

from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.enrich.cloud import CloudRangesSource
from consumers.enrich.geo import Geoip2FastSource, MaxMindSource, default_source
from tests.enrich.conftest import ENRICH


def test_offline_default_names_its_dataset_and_knows_public_addresses() -> None:
    source = default_source()
    assert "GeoLite2" in source.version
    claim = source.lookup("8.8.8.8")
    assert claim is not None and claim.country == "US" and claim.as_name == "GOOGLE"
    assert claim.dataset_version == source.version
    assert source.lookup("192.168.1.1") is None
    assert source.lookup("not-an-address") is None
    v6 = source.lookup("2a00:1450:4001:80b::200e")
    assert v6 is not None and v6.as_name == "GOOGLE"


def test_offline_default_drops_an_as_block_that_does_not_contain_the_address() -> None:
    # geoip2fast answers 91.198.174.225 (Wikimedia, Amsterdam) with the AS of the
    # neighbouring 91.198.173.0/24; the claim must not carry that AS name
    claim = Geoip2FastSource().open().lookup("91.198.174.225")
    assert claim is not None
    assert claim.as_name == ""


def _write_city_and_asn_mmdb(folder: Path) -> tuple[Path, Path]:
    city = MMDBWriter(ip_version=6, database_type="GeoLite2-City", ipv4_compatible=True)
    city.insert_network(netaddr.IPSet(["145.100.0.0/15"]), {
        "country": {"iso_code": "NL"}, "registered_country": {"iso_code": "NL"},
        "location": {"latitude": 52.35, "longitude": 4.95, "accuracy_radius": 20},
    })
    city_path = folder / "GeoLite2-City-test.mmdb"
    city.to_db_file(str(city_path))
    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    asn.insert_network(netaddr.IPSet(["145.100.0.0/15"]), {
        "autonomous_system_number": 1103, "autonomous_system_organization": "SURF B.V.",
    })
    asn_path = folder / "GeoLite2-ASN-test.mmdb"
    asn.to_db_file(str(asn_path))
    return city_path, asn_path


def test_maxmind_databases_are_read_with_their_version(tmp_path: Path) -> None:
    city_path, asn_path = _write_city_and_asn_mmdb(tmp_path)
    city = MaxMindSource(city_path).open()
    claim = city.lookup("145.100.1.1")
    assert city.name == "mmdb:GeoLite2-City"
    assert "GeoLite2-City built" in city.version
    assert claim is not None and claim.country == "NL"
    assert claim.latitude == 52.35 and claim.accuracy_km == 20
    assert city.lookup("8.8.8.8") is None
    asn_claim = MaxMindSource(asn_path).open().lookup("145.100.1.1")
    assert asn_claim is not None and asn_claim.asn == 1103


def test_configured_mmdb_files_come_before_the_default(tmp_path: Path) -> None:
    city_path, asn_path = _write_city_and_asn_mmdb(tmp_path)
    enricher, _ = open_enricher(JurisdictionSettings(mmdb_paths=[city_path, asn_path]))
    claims = enricher.claims("145.100.1.1")
    assert [c.source for c in claims][:2] == ["mmdb:GeoLite2-City", "mmdb:GeoLite2-ASN"]
    legal = enricher.legal("145.100.1.1")
    assert legal.operator == "SURF" and legal.country == "NL" and legal.confidence == "high"
    assert "mmdb:GeoLite2-City" in enricher.dataset_versions()


def test_cloud_ranges_map_addresses_to_regions_and_places() -> None:
    source = CloudRangesSource({
        "aws": ENRICH / "aws_ip_ranges_sample.json",
        "azure": ENRICH / "azure_service_tags_sample.json",
        "gcp": ENRICH / "gcp_cloud_sample.json",
    }).open()
    assert "aws: syncToken 1718611393" in source.version
    assert "azure: changeNumber 327" in source.version
    dublin = source.lookup("52.95.1.1")
    assert dublin is not None and (dublin.region, dublin.country) == ("eu-west-1", "IE")
    edge = source.lookup("52.95.110.5")  # longest prefix: the GLOBAL /24 inside eu-west-1
    assert edge is not None and edge.anycast and edge.country == ""
    azure = source.lookup("13.69.1.1")
    assert azure is not None and (azure.region, azure.country) == ("westeurope", "NL")
    front_door = source.lookup("13.107.246.10")
    assert front_door is not None and front_door.cloud_provider == "Microsoft Azure"
    assert front_door.region == ""
    gcp = source.lookup("34.90.0.1")
    assert gcp is not None and (gcp.region, gcp.country) == ("europe-west4", "NL")
    v6 = source.lookup("2a05:d018::1")
    assert v6 is not None and v6.country == "IE"
    assert source.lookup("192.0.2.1") is None
