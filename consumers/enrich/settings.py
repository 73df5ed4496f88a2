"""The ``[jurisdiction]`` settings section (used by ``grenswacht/settings.py``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class VantagePointPosition(BaseModel):
    name: str = Field(description="Vantage point name (the gw_vp of its results).")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    country: str = Field("", description="ISO country code, informative.")


class JurisdictionSettings(BaseModel):
    mmdb_paths: list[Path] = Field(
        default_factory=list,
        description="MaxMind-format databases (GeoLite2 City/Country/ASN, IPinfo Lite, DB-IP "
        "Lite), asked in this order before the bundled offline data.",
    )
    aws_ip_ranges: Path | None = Field(None, description="AWS ip-ranges.json.")
    azure_service_tags: Path | None = Field(
        None, description="Azure ServiceTags_Public_*.json."
    )
    gcp_cloud_json: Path | None = Field(None, description="Google Cloud cloud.json.")
    operators_file: Path | None = Field(
        None, description="Own operators table (format of the bundled one); empty = bundled."
    )
    atlas_probe_files: list[Path] = Field(
        default_factory=list,
        description="RIPE Atlas probe API v2 responses (JSON) giving probe coordinates.",
    )
    vantage_points: list[VantagePointPosition] = Field(
        default_factory=list, description="Coordinates of self-hosted vantage points."
    )
    use_offline_default: bool = Field(
        True, description="Ask the bundled GeoLite2 data (geoip2fast) after the mmdb files."
    )
