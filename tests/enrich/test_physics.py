"""RTT physics pinned on hand-checked distances, against the Natural Earth US territory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from consumers.enrich.countries import countries, country_outline, us_outline, us_territory
from consumers.enrich.physics import (
    bound_km,
    great_circle_km,
    us_bound,
    vantage_distance_km,
    vantage_us_distance_km,
)
from consumers.enrich.sphere import EARTH_RADIUS_KM, lower_km, unit_vectors
from consumers.enrich.vantage import Vantage

AMSTERDAM = (52.37, 4.90)


def at(lat: float, lon: float, uncertainty: float = 0.0, area: str = "") -> Vantage:
    return Vantage("test", lat, lon, uncertainty, "", "test", "high", area)


def haversine_by_hand(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The textbook haversine, written out independently of sphere.py."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def nearest_vertex_km(lat: float, lon: float, geometry: shapely.Geometry) -> float:
    """Brute force over every vertex of the shape (an upper bound on the true distance)."""
    coords = shapely.get_coordinates(geometry)
    dots = unit_vectors(coords[:, 1], coords[:, 0]) @ unit_vectors(
        np.array([lat]), np.array([lon]))[0]
    return float(np.arccos(min(1.0, dots.max()))) * EARTH_RADIUS_KM


@pytest.mark.parametrize(
    ("a", "b", "published_km"),
    [
        # published great-circle distances between city centres, +-1 %
        ((52.37, 4.90), (48.86, 2.35), 430),  # Amsterdam - Paris
        ((51.51, -0.13), (40.71, -74.01), 5570),  # London - New York
        ((52.37, 4.90), (44.815, -66.95), 5129),  # Amsterdam - West Quoddy Head, Maine
    ],
)
def test_great_circle_matches_published_distances(
    a: tuple[float, float], b: tuple[float, float], published_km: float
) -> None:
    distance = great_circle_km(*a, *b)
    assert distance == pytest.approx(haversine_by_hand(*a, *b), rel=1e-9)
    assert distance == pytest.approx(published_km, rel=0.01)


def test_rtt_bound_is_100_km_per_ms() -> None:
    assert bound_km(51.0) == 5100.0
    assert bound_km(0.5) == 50.0
    assert bound_km(-1.0) == 0.0


def test_nearest_us_point_from_amsterdam_is_northern_maine_about_5000_km() -> None:
    bound = vantage_us_distance_km(at(*AMSTERDAM))
    # northern Maine (St. John river at the New Brunswick border, ~47.1 N 67.8 W) is
    # 5,035 km away; the bound is lower by the sphere/ellipsoid slack (0.5 %), the sample
    # tolerance and the data margin only
    maine = great_circle_km(*AMSTERDAM, 47.07, -67.79)
    assert lower_km(maine) - us_outline().slack_km - 15 <= bound <= lower_km(maine)
    assert bound <= nearest_vertex_km(*AMSTERDAM, us_territory())


def test_no_other_part_of_the_us_is_nearer_to_the_netherlands_than_maine() -> None:
    mainland = country_outline("US")
    assert mainland is not None
    maine = mainland.distance_km(*AMSTERDAM)
    for code in ("PR", "VI", "GU", "MP", "AS", "UM"):
        other = country_outline(code)
        assert other is not None and other.distance_km(*AMSTERDAM) > maine + 900, code


def test_reply_under_49_ms_from_amsterdam_is_never_in_the_us() -> None:
    assert not us_bound(49.0, at(*AMSTERDAM)).us_possible
    assert not us_bound(30.0, at(*AMSTERDAM, 10.0)).us_possible
    assert us_bound(52.0, at(*AMSTERDAM)).us_possible  # 5,200 km reaches Maine


@pytest.mark.parametrize(
    ("place", "lat", "lon"),
    [
        ("Kansas", 39.0, -98.0),
        ("Anchorage", 61.22, -149.90),
        ("Honolulu", 21.31, -157.86),
        ("San Juan, Puerto Rico", 18.47, -66.11),
        ("Hagatna, Guam", 13.48, 144.75),
        ("Pago Pago, American Samoa", -14.28, -170.70),
        ("Attu, Aleutians (east of the antimeridian)", 52.90, 173.10),
        ("Charlotte Amalie, USVI", 18.34, -64.93),
        ("Wake Island", 19.28, 166.65),
    ],
)
def test_every_part_of_the_territory_counts_as_us(place: str, lat: float, lon: float) -> None:
    assert vantage_us_distance_km(at(lat, lon)) == 0.0, place
    assert us_bound(0.3, at(lat, lon)).us_possible


def test_caribbean_territories_are_the_nearest_us_from_brazil() -> None:
    sao_paulo = (-23.55, -46.63)
    distances = {code: outline.distance_km(*sao_paulo) for code in sorted(
        countries()) if code in ("US", "PR", "VI", "UM") and (outline := country_outline(code))}
    nearest = min(distances, key=distances.__getitem__)
    assert nearest in ("PR", "VI")
    assert 4500 < distances[nearest] < 5200


def test_a_vantage_known_by_country_is_bounded_by_the_whole_country() -> None:
    # a probe somewhere in the Netherlands: the Zeeland coast is ~110 km nearer to Maine
    # than Amsterdam, and the bound takes the nearest point of the country
    country = vantage_us_distance_km(at(52.2, 5.5, 210.0, "NL"))
    assert country < vantage_us_distance_km(at(*AMSTERDAM))
    assert country > 4800
    # Spain includes the Canaries, but Galicia is nearer to the US
    spain = vantage_us_distance_km(at(40.0, -4.0, 1700.0, "ES"))
    assert 4300 < spain < nearest_vertex_km(43.155, -9.218, us_territory())
    # a country always bounds its own territory at 0
    assert vantage_distance_km(at(52.2, 5.5, 210.0, "NL"), "NL") == 0.0
