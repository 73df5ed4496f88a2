"""Round-trip-time physics: where a reply can have come from.

Light in fibre covers about 200 km per millisecond, so a reply with round-trip time *r* ms
comes from within ``r x 100`` km of the vantage point (half the round trip, no faster path
exists). If the nearest point of the United States is farther than that, the reply is
**provably not from the US**, whatever a geo database claims.

The US is its full territory (``data/us_territory.json``): the contiguous states and
Alaska as outline polygons, Hawaii, the Aleutians and the territories (Puerto Rico, US
Virgin Islands, Guam, Northern Mariana Islands, American Samoa, minor outlying islands) as
buffered polylines. The shape is an *outer* approximation and every distance is lowered by
the file's ``margin_km`` before it bounds anything, so coarse vertices can only make the
bound more cautious. Pure functions, no I/O beyond reading the bundled JSON once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

EARTH_RADIUS_KM = 6371.0088
KM_PER_MS_RTT = 100.0  # 200 km/ms in fibre, halved for the round trip

Vector = tuple[float, float, float]


def bound_km(rtt_ms: float) -> float:
    """Farthest distance (km) from the vantage point a reply with this RTT can come from."""
    return max(rtt_ms, 0.0) * KM_PER_MS_RTT


def _vector(latitude: float, longitude: float) -> Vector:
    phi, lam = math.radians(latitude), math.radians(longitude)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


def _angle(a: Vector, b: Vector) -> float:
    cross = _cross(a, b)
    return math.atan2(math.sqrt(_dot(cross, cross)), _dot(a, b))


def _dot(a: Vector, b: Vector) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vector, b: Vector) -> Vector:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (spherical Earth, mean radius)."""
    return EARTH_RADIUS_KM * _angle(_vector(lat1, lon1), _vector(lat2, lon2))


def _segment_km(p: Vector, a: Vector, b: Vector) -> float:
    """Distance from p to the great-circle arc a-b (shorter arc)."""
    normal = _cross(a, b)
    norm = math.sqrt(_dot(normal, normal))
    if norm < 1e-12:
        return EARTH_RADIUS_KM * _angle(p, a)
    n = (normal[0] / norm, normal[1] / norm, normal[2] / norm)
    # projection of p onto the great circle through a and b
    d = _dot(p, n)
    q = (p[0] - d * n[0], p[1] - d * n[1], p[2] - d * n[2])
    q_norm = math.sqrt(_dot(q, q))
    if q_norm > 1e-12:
        q = (q[0] / q_norm, q[1] / q_norm, q[2] / q_norm)
        # q lies on the arc when it is on the inner side of both end points
        if _dot(_cross(a, q), normal) >= 0 and _dot(_cross(q, b), normal) >= 0:
            return EARTH_RADIUS_KM * _angle(p, q)
    return EARTH_RADIUS_KM * min(_angle(p, a), _angle(p, b))


def _inside(latitude: float, longitude: float, ring: list[tuple[float, float]]) -> bool:
    """Even-odd test in the (lat, lon) plane; the outlines do not cross the antimeridian."""
    inside = False
    j = len(ring) - 1
    for i, (lat_i, lon_i) in enumerate(ring):
        lat_j, lon_j = ring[j]
        if (lat_i > latitude) != (lat_j > latitude):
            crossing = lon_i + (latitude - lat_i) * (lon_j - lon_i) / (lat_j - lat_i)
            if longitude < crossing:
                inside = not inside
        j = i
    return inside


@dataclass(frozen=True, slots=True)
class _Part:
    name: str
    points: tuple[tuple[float, float], ...]
    vectors: tuple[Vector, ...]
    buffer_km: float
    closed: bool


@dataclass(frozen=True, slots=True)
class Territory:
    """A country's territory as outline polygons and buffered island lines."""

    dataset: str
    version: str
    margin_km: float
    parts: tuple[_Part, ...]

    def distance_km(self, latitude: float, longitude: float) -> tuple[float, str]:
        """(distance to the outline in km, name of the nearest part); 0 inside."""
        p = _vector(latitude, longitude)
        best, best_name = math.inf, ""
        for part in self.parts:
            if part.closed and _inside(latitude, longitude, list(part.points)):
                return 0.0, part.name
            vectors = part.vectors
            pairs = zip(vectors, vectors[1:] + (vectors[:1] if part.closed else ()), strict=False)
            if len(vectors) == 1:
                distance = EARTH_RADIUS_KM * _angle(p, vectors[0])
            else:
                distance = min(_segment_km(p, a, b) for a, b in pairs)
            distance = max(distance - part.buffer_km, 0.0)
            if distance < best:
                best, best_name = distance, part.name
        return best, best_name

    def lower_bound_km(self, latitude: float, longitude: float) -> float:
        """A distance the true territory is certainly not nearer than (margin applied)."""
        return max(self.distance_km(latitude, longitude)[0] - self.margin_km, 0.0)


def load_territory(document: dict[str, Any]) -> Territory:
    parts: list[_Part] = []
    for name, ring in document["polygons"].items():
        points = tuple((float(lat), float(lon)) for lat, lon in ring)
        parts.append(_Part(name, points, tuple(_vector(*pt) for pt in points), 0.0, True))
    for name, line in document["lines"].items():
        points = tuple((float(lat), float(lon)) for lat, lon in line["points"])
        parts.append(
            _Part(name, points, tuple(_vector(*pt) for pt in points), float(line["buffer_km"]),
                  False)
        )
    return Territory(
        str(document["dataset"]), str(document["version"]), float(document["margin_km"]),
        tuple(parts),
    )


@cache
def us_territory() -> Territory:
    """The bundled full US territory (cached)."""
    text = (resources.files("consumers.enrich") / "data" / "us_territory.json").read_text(
        encoding="utf-8"
    )
    return load_territory(json.loads(text))


@dataclass(frozen=True, slots=True)
class UsBound:
    """What physics says about one reply and the US."""

    rtt_ms: float
    bound_km: float
    us_distance_km: float  # lower bound from the vantage point to any US point
    vantage_uncertainty_km: float

    @property
    def us_possible(self) -> bool:
        """False when the reply provably comes from outside the US."""
        return self.bound_km + self.vantage_uncertainty_km >= self.us_distance_km

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "rtt_ms": self.rtt_ms,
            "bound_km": round(self.bound_km, 1),
            "us_distance_km": round(self.us_distance_km, 1),
            "vantage_uncertainty_km": self.vantage_uncertainty_km,
            "us_possible": self.us_possible,
        }


@cache
def us_distance_lower_bound_km(latitude: float, longitude: float) -> float:
    """Cached :meth:`Territory.lower_bound_km` of the US (vantage points repeat a lot)."""
    return us_territory().lower_bound_km(latitude, longitude)


def us_bound(
    rtt_ms: float, latitude: float, longitude: float, vantage_uncertainty_km: float = 0.0
) -> UsBound:
    """Physics for a reply with ``rtt_ms`` seen from a vantage point at (lat, lon)."""
    return UsBound(
        rtt_ms, bound_km(rtt_ms), us_distance_lower_bound_km(latitude, longitude),
        vantage_uncertainty_km,
    )
