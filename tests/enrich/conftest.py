"""Fixtures of the jurisdiction tests: real Atlas results + the real bundled datasets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.enrich import Enricher, JurisdictionSettings, VantageRegistry, open_enricher

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ATLAS = FIXTURES / "atlas"
ENRICH = FIXTURES / "enrich"
PROBE_FILES = sorted((ATLAS / "api").glob("pierky_*_probes_api_v2.json"))


def read_results(name: str) -> Iterator[dict[str, Any]]:
    with (ATLAS / "traceroute" / name).open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


@pytest.fixture(scope="session")
def enricher_and_registry() -> tuple[Enricher, VantageRegistry]:
    """The offline default (geoip2fast) plus the RIPE Atlas probe metadata fixtures."""
    return open_enricher(JurisdictionSettings(atlas_probe_files=PROBE_FILES))


@pytest.fixture(scope="session")
def cloud_settings() -> JurisdictionSettings:
    return JurisdictionSettings(
        aws_ip_ranges=ENRICH / "aws_ip_ranges_sample.json",
        azure_service_tags=ENRICH / "azure_service_tags_sample.json",
        gcp_cloud_json=ENRICH / "gcp_cloud_sample.json",
        atlas_probe_files=PROBE_FILES,
    )
