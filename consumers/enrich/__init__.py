"""Jurisdiction per hop: geo sources + RTT physics (physical axis) and operators (legal axis).

``open_enricher(settings)`` builds the sources from the ``[jurisdiction]`` settings;
``window.hop_stage`` is the hop-verdict stage the analysis pipeline (``consumers.pipeline``)
calls once per window. See
``docs/jurisdiction.md``.
"""

from __future__ import annotations

from pathlib import Path

from consumers.enrich.cloud import CloudRangesSource
from consumers.enrich.geo import GeoSource, MaxMindSource, default_source
from consumers.enrich.hops import Enricher, HopRecord, HopVerdict
from consumers.enrich.legal import load_operators
from consumers.enrich.settings import JurisdictionSettings
from consumers.enrich.vantage import Vantage, VantageRegistry

__all__ = [
    "Enricher", "HopRecord", "HopVerdict", "JurisdictionSettings", "Vantage",
    "VantageRegistry", "open_enricher",
]


def open_sources(settings: JurisdictionSettings) -> list[GeoSource]:
    """Cloud ranges first (most precise), then the user's mmdb files, then the default."""
    sources: list[GeoSource] = []
    cloud: dict[str, Path] = {}
    if settings.aws_ip_ranges:
        cloud["aws"] = settings.aws_ip_ranges
    if settings.azure_service_tags:
        cloud["azure"] = settings.azure_service_tags
    if settings.gcp_cloud_json:
        cloud["gcp"] = settings.gcp_cloud_json
    if cloud:
        sources.append(CloudRangesSource(cloud).open())
    sources.extend(MaxMindSource(path).open() for path in settings.mmdb_paths)
    if settings.use_offline_default:
        sources.append(default_source())
    return sources


def open_enricher(settings: JurisdictionSettings) -> tuple[Enricher, VantageRegistry]:
    """The enricher and the vantage-point registry described by ``settings``."""
    sources = open_sources(settings)
    registry = VantageRegistry(geo_sources=sources).add_atlas_files(settings.atlas_probe_files)
    for vp in settings.vantage_points:
        registry.add_self_hosted(vp.name, vp.latitude, vp.longitude, vp.country)
    return Enricher(sources, load_operators(settings.operators_file)), registry
