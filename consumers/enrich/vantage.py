"""Where the vantage points are: the other end of every RTT bound.

Three ways, best first:

1. **self-hosted configuration** — the operator declared the coordinates (``settings``);
2. **RIPE Atlas probe metadata** — ``geometry`` of probe API v2 objects
   (``/api/v2/probes/?id__in=…`` lists, saved as JSON); Atlas hosts place their probe on a
   map, so we allow 10 km;
3. **geo lookup of the probe's public address** — country only, so the vantage point is
   anywhere in that country's shape (Natural Earth, ``countries.py``): ``area`` names the
   country, distances are measured from its shape, and a disc covering the shape gives
   the centre and the position uncertainty where a disc is needed. Lower confidence,
   still sound.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from consumers.enrich.countries import country_outline
from consumers.enrich.geo import GeoSource
from schemas.errors import ConfigError

ATLAS_POSITION_UNCERTAINTY_KM = 10.0
SELF_HOSTED_POSITION_UNCERTAINTY_KM = 1.0


@dataclass(frozen=True, slots=True)
class Vantage:
    """A vantage point with a position and how well that position is known."""

    key: str  # "atlas:6012" or "vp:ams-1"
    latitude: float
    longitude: float
    uncertainty_km: float
    country: str
    basis: str  # "self-hosted configuration" | "RIPE Atlas probe metadata" | "geo lookup ..."
    confidence: str  # high | medium | low
    area: str = ""  # known only by country: anywhere in this ISO code's shape

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def country_disc(code: str) -> tuple[float, float, float] | None:
    """(latitude, longitude, radius_km) of a disc covering the country's shape."""
    outline = country_outline(code) if code else None
    return outline.covering_cap() if outline is not None else None


def vantage_key(probe_id: int, vantage_point: str) -> str:
    return f"vp:{vantage_point}" if vantage_point else f"atlas:{probe_id}"


def atlas_probes_from_api(document: Mapping[str, Any]) -> dict[int, Vantage]:
    """Vantage points from a probe API v2 response (a list page or a single probe)."""
    items = document.get("results") if "results" in document else [document]
    found: dict[int, Vantage] = {}
    for probe in items or []:
        geometry = probe.get("geometry") or {}
        coordinates = geometry.get("coordinates")
        if geometry.get("type") != "Point" or not coordinates or len(coordinates) < 2:
            continue
        longitude, latitude = float(coordinates[0]), float(coordinates[1])
        probe_id = int(probe["id"])
        found[probe_id] = Vantage(
            vantage_key(probe_id, ""), latitude, longitude, ATLAS_POSITION_UNCERTAINTY_KM,
            str(probe.get("country_code") or ""), "RIPE Atlas probe metadata", "high",
        )
    return found


class VantageRegistry:
    """Looks vantage points up by probe id / name, falling back to a geo lookup."""

    def __init__(
        self,
        atlas: Mapping[int, Vantage] | None = None,
        self_hosted: Mapping[str, Vantage] | None = None,
        geo_sources: Iterable[GeoSource] = (),
    ) -> None:
        self.atlas = dict(atlas or {})
        self.fetched_at: dict[str, Any] = {}  # vantage key -> when the probe API answered
        self.self_hosted = dict(self_hosted or {})
        self.geo_sources = tuple(geo_sources)
        self._looked_up: dict[str, Vantage | None] = {}

    def add_atlas_files(self, paths: Iterable[Path]) -> VantageRegistry:
        for path in paths:
            try:
                document = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read RIPE Atlas probe file {path}: {exc}") from exc
            self.atlas.update(atlas_probes_from_api(document))
        return self

    def add_stored(self, rows: Iterable[Mapping[str, Any]]) -> VantageRegistry:
        """Atlas probe positions fetched from the probe API and stored in ``vantage_points``
        (rows with ``vantage_key``, ``latitude``, ``longitude``, ``uncertainty_km``,
        ``country``, ``basis``, ``confidence``, ``fetched_at``); they replace what the
        configured files say about the same probe."""
        for row in rows:
            key = str(row["vantage_key"])
            if not key.startswith("atlas:"):
                continue
            self.atlas[int(key.removeprefix("atlas:"))] = Vantage(
                key, float(row["latitude"]), float(row["longitude"]),
                float(row["uncertainty_km"]), str(row["country"]), str(row["basis"]),
                str(row["confidence"]))
            self.fetched_at[key] = row.get("fetched_at")
        return self

    def add_self_hosted(self, name: str, latitude: float, longitude: float,
                        country: str = "") -> VantageRegistry:
        self.self_hosted[name] = Vantage(
            vantage_key(0, name), latitude, longitude, SELF_HOSTED_POSITION_UNCERTAINTY_KM,
            country, "self-hosted configuration", "high",
        )
        return self

    def resolve(self, probe_id: int, vantage_point: str = "",
                public_address: str = "") -> Vantage | None:
        if vantage_point and vantage_point in self.self_hosted:
            return self.self_hosted[vantage_point]
        if not vantage_point and probe_id in self.atlas:
            return self.atlas[probe_id]
        if not public_address:
            return None
        if public_address not in self._looked_up:
            self._looked_up[public_address] = self._by_address(
                vantage_key(probe_id, vantage_point), public_address
            )
        found = self._looked_up[public_address]
        if found is not None and found.key != vantage_key(probe_id, vantage_point):
            found = Vantage(vantage_key(probe_id, vantage_point), found.latitude,
                            found.longitude, found.uncertainty_km, found.country, found.basis,
                            found.confidence, found.area)
        return found

    def _by_address(self, key: str, address: str) -> Vantage | None:
        for source in self.geo_sources:
            claim = source.lookup(address)
            if claim is None:
                continue
            if claim.latitude is not None and claim.longitude is not None:
                # a city-level database: trust its own accuracy radius, at least 50 km
                return Vantage(key, claim.latitude, claim.longitude,
                               max(claim.accuracy_km or 0.0, 50.0) * 2, claim.country,
                               f"geo lookup of public address {address} ({source.version})",
                               "low")
            disc = country_disc(claim.country)
            if disc is not None:
                return Vantage(key, disc[0], disc[1], disc[2], claim.country,
                               f"geo lookup of public address {address}: country "
                               f"{claim.country} ({source.version})", "low", claim.country)
        return None
