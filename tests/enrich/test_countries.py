"""The Natural Earth country shapes and the lower-bound distances built on them."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.enrich.countries import (
    DATASET,
    EU_EEA,
    VERSION,
    bloc,
    countries,
    country,
    country_outline,
    country_shapes,
    dataset_versions,
    sovereign_codes,
    us_codes,
    us_outline,
    us_territory,
)
from consumers.enrich.sphere import DATA_MARGIN_KM, EARTH_RADIUS_KM, Outline, unit_vectors


def test_every_iso_code_that_geo_databases_return_has_a_shape() -> None:
    codes = set(countries())
    assert len(codes) > 240
    assert {"NL", "DE", "FR", "NO", "GB", "US", "PR", "TW", "XK", "GF", "SJ", "BQ",
            "CX", "CC", "TK", "CP"} <= codes
    assert all(len(code) == 2 for code in codes if code not in {"ESB", "WSB", "BRT", "PGA",
                                                                 "SCR"})
    assert dataset_versions() == {DATASET: VERSION} and VERSION == "5.1.1"


def test_us_territory_is_every_feature_under_us_sovereignty() -> None:
    assert us_codes() == sovereign_codes("US1") == frozenset(
        {"US", "PR", "VI", "GU", "MP", "AS", "UM"})
    assert "USG" in countries()["US"].features  # Guantanamo Bay, US-administered
    assert {bloc(code) for code in us_codes()} == {"US"}
    assert bloc("NL") == "EU_EEA" and bloc("GB") == "elsewhere" and bloc("") == ""
    assert bloc("GF") == "EU_EEA" and bloc("SJ") == "elsewhere"  # outermost region / not EEA
    assert {"NO", "IS", "LI"} <= EU_EEA


@pytest.mark.parametrize(("code", "west", "south", "east", "north"), [
    ("FR", -5.2, 41.3, 9.6, 51.1),  # metropolitan France and Corsica only
    ("NO", 4.5, 57.9, 31.2, 71.2),  # without Svalbard, Jan Mayen, Bouvet
    ("NL", 3.3, 50.7, 7.3, 53.6),  # without Bonaire, Sint Eustatius, Saba
    ("NZ", 165.0, -53.0, 180.0, -29.0),  # without Tokelau (Chatham is east of 180)
])
def test_territories_with_codes_of_their_own_are_split_off(
    code: str, west: float, south: float, east: float, north: float,
) -> None:
    found = country(code)
    assert found is not None
    for part in shapely.get_parts(found.geometry):
        x, y = part.centroid.x, part.centroid.y
        if code == "NZ" and x < 0:
            x += 360  # the Chatham Islands lie across the antimeridian
        assert west <= x <= max(east, 184) and south <= y <= north, (code, x, y)


# published coordinates of the extremes of US territory (and of the Netherlands)
EXTREMES = [
    ("West Quoddy Head, Maine", 44.815, -66.950), ("Point Barrow, Alaska", 71.389, -156.479),
    ("Key West, Florida", 24.5465, -81.7975), ("Ka Lae, Hawaii", 18.911, -155.681),
    ("Cape Wrangell, Attu", 52.93, 172.44), ("Point Udall, St. Croix", 17.756, -64.565),
    ("Cape Alava, Washington", 48.164, -124.733), ("Northwest Angle", 49.384, -95.153),
    ("Navassa Island", 18.40, -75.01), ("Wake Island", 19.30, 166.63),
    ("Jarvis Island", -0.37, -159.99), ("Kingman Reef", 6.40, -162.42),
    ("Rose Atoll", -14.55, -168.16), ("Kure Atoll", 28.39, -178.29),
]


@pytest.fixture(scope="module")
def exact() -> Outline:
    return Outline(us_territory(), tolerance_km=0.5, margin_km=0.0)


@pytest.mark.parametrize(("place", "lat", "lon"), EXTREMES)
def test_the_data_margin_covers_the_generalisation_of_the_10m_shapes(
    exact: Outline, place: str, lat: float, lon: float,
) -> None:
    # within a few km of the drawn shape: the 20 km data margin is several times that
    assert exact.distance_km(lat, lon) + 0.5 < DATA_MARGIN_KM / 2, place
    assert us_outline().distance_km(lat, lon) == 0.0, place


def _vertex_distance_km(outline: Outline, lat: float, lon: float) -> float:
    coords = shapely.get_coordinates(outline.geometry)
    dots = unit_vectors(coords[:, 1], coords[:, 0]) @ unit_vectors(
        np.array([lat]), np.array([lon]))[0]
    return float(np.arccos(min(1.0, dots.max()))) * EARTH_RADIUS_KM


@settings(max_examples=60, deadline=None)
@given(st.floats(-70, 80), st.floats(-180, 180), st.sampled_from(["US", "NL", "FR", "NZ",
                                                                   "BR", "RU", "JP"]))
def test_the_distance_is_never_more_than_to_the_nearest_vertex(
    lat: float, lon: float, code: str,
) -> None:
    outline = country_outline(code)
    assert outline is not None
    distance = outline.distance_km(lat, lon)
    vertex = _vertex_distance_km(outline, lat, lon)
    # a lower bound: never above the distance to a point of the shape (its vertices)
    assert distance <= vertex
    if outline.contains(lat, lon):
        assert distance == 0.0


def test_distances_between_shapes_and_covering_caps() -> None:
    netherlands, spain = country_outline("NL"), country_outline("ES")
    assert netherlands is not None and spain is not None
    between = netherlands.distance_to_km(spain)
    assert 0 < between < 950  # Zeeland - the Pyrenees is ~970 km
    assert netherlands.distance_to_km(country_outline("BE") or netherlands) == 0.0
    lat, lon, radius = netherlands.covering_cap()
    coords = shapely.get_coordinates(netherlands.geometry)
    centre = unit_vectors(np.array([lat]), np.array([lon]))[0]
    farthest = float(np.arccos(np.clip(unit_vectors(coords[:, 1], coords[:, 0]) @ centre,
                                       -1, 1)).max()) * EARTH_RADIUS_KM
    assert farthest <= radius < farthest + 100


def test_simplified_shapes_for_drawing() -> None:
    full = country_shapes()
    coarse = country_shapes(simplify_km=20.0)
    assert set(full) == set(coarse)
    before = sum(shapely.get_num_coordinates(g) for g in full.values())
    after = sum(shapely.get_num_coordinates(g) for g in coarse.values())
    assert after < before / 4
    assert country_shapes(simplify_km=20.0) is coarse  # cached per tolerance
    assert coarse["NL"].is_valid and coarse["NL"].intersects(shapely.Point(4.9, 52.37))
