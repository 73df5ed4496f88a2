"""RTT physics pinned on hand-checked distances."""

from __future__ import annotations

import math

import pytest

from consumers.enrich.physics import bound_km, great_circle_km, us_bound, us_territory

AMSTERDAM = (52.37, 4.90)


def haversine_by_hand(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The textbook haversine, written out independently of physics.py."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


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


def test_nearest_us_point_from_amsterdam_is_maine_about_5100_km() -> None:
    territory = us_territory()
    distance, part = territory.distance_km(*AMSTERDAM)
    assert part == "contiguous"
    # northern Maine (St. John river / New Brunswick border, ~47.1 N 67.8 W): 5,035 km;
    # West Quoddy Head, the easternmost point, is 5,129 km away
    assert 5000 <= distance <= great_circle_km(*AMSTERDAM, 44.815, -66.95)
    assert distance == pytest.approx(great_circle_km(*AMSTERDAM, 47.07, -67.79), abs=10)


def test_no_other_part_of_the_us_is_nearer_to_the_netherlands_than_maine() -> None:
    territory = us_territory()
    maine, _ = territory.distance_km(*AMSTERDAM)
    for part in territory.parts:
        if part.name == "contiguous":
            continue
        alone = type(territory)(territory.dataset, territory.version, 0.0, (part,))
        assert alone.distance_km(*AMSTERDAM)[0] > maine + 900, part.name


def test_reply_under_49_ms_from_amsterdam_is_never_in_the_us() -> None:
    assert not us_bound(49.0, *AMSTERDAM).us_possible
    assert not us_bound(30.0, *AMSTERDAM, vantage_uncertainty_km=10).us_possible
    assert us_bound(52.0, *AMSTERDAM).us_possible  # 5,200 km reaches Maine


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
    ],
)
def test_every_part_of_the_territory_counts_as_us(place: str, lat: float, lon: float) -> None:
    assert us_territory().lower_bound_km(lat, lon) == 0.0, place
    assert us_bound(0.3, lat, lon).us_possible


def test_caribbean_territories_are_the_nearest_us_from_brazil() -> None:
    distance, part = us_territory().distance_km(-23.55, -46.63)  # Sao Paulo
    assert part in ("puerto_rico", "us_virgin_islands")
    assert 4500 < distance < 5200
