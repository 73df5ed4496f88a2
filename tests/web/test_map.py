"""The world map: the Robinson projection and great-circle discs checked against known
values, and the map page on real data with the bundled Natural Earth shapes (skips until
the shapes loader, consumers.enrich.countries, is installed)."""

from __future__ import annotations

import math
import re

import pytest

from grenswacht.web import worldmap
from tests.server.conftest import Running
from tests.web.conftest import Site


def test_robinson_projection() -> None:
    width, height = worldmap.WIDTH, worldmap.HEIGHT
    assert height / width == pytest.approx(0.5072, abs=0.001)  # Robinson's aspect
    assert worldmap.project(0, 0) == pytest.approx((width / 2, height / 2))
    assert worldmap.project(0, -180)[0] == pytest.approx(0)
    assert worldmap.project(0, 180)[0] == pytest.approx(width)
    assert worldmap.project(90, 0)[1] == pytest.approx(0)
    assert worldmap.project(-90, 0)[1] == pytest.approx(height)
    # the pole line is 0.5322 of the equator (Robinson's table)
    pole = worldmap.project(90, 180)[0] - worldmap.project(90, -180)[0]
    assert pole / width == pytest.approx(0.5322, abs=1e-4)
    # Amsterdam lies north-east of the centre, New York west of it
    x, y = worldmap.project(52.37, 4.90)
    assert x > width / 2 and y < height / 2
    assert worldmap.project(40.71, -74.0)[0] < width / 2


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * worldmap.EARTH_RADIUS_KM * math.asin(math.sqrt(h))


@pytest.mark.parametrize("centre", [(52.37, 4.90), (64.1, -21.9), (-33.9, 151.2),
                                    (0.0, 179.5)])
def test_circle_points_lie_at_the_radius(centre: tuple[float, float]) -> None:
    points = worldmap.circle(*centre, 1500.0)
    assert len(points) == 73
    assert all(_km(centre, p) == pytest.approx(1500.0, rel=1e-6) for p in points)
    assert all(-180 <= lon <= 180 for _, lon in points)


needs_shapes = pytest.mark.skipif(bool(worldmap.shapes_missing()),
                                  reason=worldmap.shapes_missing() or "ok")


@needs_shapes
def test_map_page_draws_real_shapes_vantage_points_and_us_hops(site: Site) -> None:
    client = Running(site.app, site.url, site.token, site.storage)
    html = client.request("GET", "/map?lang=en").body.decode()
    svg = re.search(r'<svg class="world-map".*?</svg>', html, re.S)
    assert svg is not None
    shapes, us = worldmap.natural_earth()
    assert len(re.findall(r"<path d=", svg.group(0))) > 200  # every country
    assert 'fill="#f4c7c3"' in svg.group(0)  # US territory
    located = site.storage.query(
        "SELECT uniqExact(vantage_key) FROM path_verdicts FINAL WHERE vantage_key IN "
        "(SELECT vantage_key FROM vantage_points FINAL)").rows[0][0]
    assert len(re.findall(r"<circle [^>]*><title>", svg.group(0))) == located
    us_hops = r'fill="#8b0000" fill-opacity="0.75"[^>]*><title>US: \d+ hops'
    assert re.search(us_hops, svg.group(0))
    name = "Nieuwsportaal%20(CloudFront)"
    bounded = client.request("GET", f"/map?lang=en&application={name}&bounds=1").body.decode()
    assert len(re.findall(r"<polyline ", bounded)) >= 1
    assert "RTT bound" in bounded
