"""Distances on the sphere between points and country shapes, as sound lower bounds.

Every distance here bounds what physics may conclude, so it must never be larger than the
true distance. An :class:`Outline` turns a lon/lat shape (``countries.py``) into boundary
samples on the unit sphere such that every point of the boundary lies within
``tolerance_km`` of a sample (edges are densified, then thinned along their length), plus a
covering cap per polygon part to skip far parts. The lower bound from a point is

    0 inside the shape, else  min over samples (great-circle distance) - tolerance - margin

and between two shapes the same over pairs of samples (0 when they intersect). The margin
is for the data: Natural Earth 1:10m is drawn for a 1:10,000,000 map, where 2 mm on paper
are 20 km; coastlines and borders are generalised well within that (the US extremes in
``tests/enrich/test_countries.py`` lie within a few km of the shapes), and 1 km more covers
edges drawn straight in lon/lat instead of along great circles (at most ~0.05 km for the
10 km sub-edges). Distances are computed on a sphere of mean radius; geodesics on the WGS84
ellipsoid differ from them by less than 0.5 % either way, so every spherical distance is
multiplied by ``1 - SPHERE_SLACK`` (:func:`lower_km`) before it bounds anything, and a disc
radius taken from an RTT is divided by it (:func:`upper_km`) where a sphere must hold it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_KM = 6371.0088
SAMPLE_TOLERANCE_KM = 10.0
DATA_MARGIN_KM = 21.0  # Natural Earth 10m generalisation (20 km) + straight lon/lat edges
SPHERE_SLACK = 0.005  # spherical vs ellipsoidal (WGS84) geodesic distance, relative


def lower_km(sphere_km: float) -> float:
    """A spherical distance made a lower bound of the distance on the ellipsoid."""
    return sphere_km * (1.0 - SPHERE_SLACK)


def upper_km(true_km: float) -> float:
    """The spherical radius that holds every point within ``true_km`` on the ellipsoid."""
    return true_km / (1.0 - SPHERE_SLACK)

Array = npt.NDArray[np.float64]


def unit_vectors(latitude: Array, longitude: Array) -> Array:
    """(N, 3) unit vectors of points given in degrees."""
    phi, lam = np.radians(latitude), np.radians(longitude)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)],
                    axis=-1)


def _vector(latitude: float, longitude: float) -> tuple[float, float, float]:
    phi, lam = math.radians(latitude), math.radians(longitude)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


def unit_vector(latitude: float, longitude: float) -> Array:
    return np.array(_vector(latitude, longitude))


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (spherical Earth, mean radius; the atan2 form, accurate
    for small and large angles; plain floats, it is called for every pair of discs)."""
    ax, ay, az = _vector(lat1, lon1)
    bx, by, bz = _vector(lat2, lon2)
    cross = math.sqrt((ay * bz - az * by) ** 2 + (az * bx - ax * bz) ** 2
                      + (ax * by - ay * bx) ** 2)
    return EARTH_RADIUS_KM * math.atan2(cross, ax * bx + ay * by + az * bz)


def _ring_samples(coords: Array, tolerance_km: float) -> Array:
    """Unit vectors along one ring, every boundary point within ``tolerance_km`` of one."""
    vectors = unit_vectors(coords[:, 1], coords[:, 0])
    if len(coords) < 2:
        return vectors
    dots = np.clip(np.einsum("ij,ij->i", vectors[:-1], vectors[1:]), -1.0, 1.0)
    lengths = np.arccos(dots) * EARTH_RADIUS_KM
    # densify: sub-edges of ~tolerance/2 (lon/lat interpolation is not uniform in length)
    pieces = np.maximum(np.ceil(2.0 * lengths / tolerance_km), 1).astype(np.int64)
    edge = np.repeat(np.arange(len(pieces)), pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    fraction = (np.arange(int(pieces.sum())) - first) / np.repeat(pieces, pieces)
    lonlat = coords[edge] + fraction[:, None] * (coords[edge + 1] - coords[edge])
    lonlat = np.vstack([lonlat, coords[-1:]])
    dense = unit_vectors(lonlat[:, 1], lonlat[:, 0])
    steps = np.arccos(np.clip(np.einsum("ij,ij->i", dense[:-1], dense[1:]), -1.0, 1.0))
    steps *= EARTH_RADIUS_KM
    if len(steps) and float(steps.max()) > tolerance_km:
        return dense  # a pathological edge: keep every dense point
    # keep the first point in every tolerance-long stretch of the ring, and its last point:
    # consecutive kept points are < 2 x tolerance apart along the ring
    stretch = np.floor(np.concatenate([[0.0], np.cumsum(steps)]) / tolerance_km)
    keep = np.concatenate([[True], stretch[1:] != stretch[:-1]])
    keep[-1] = True
    kept: Array = dense[keep]
    return kept


@dataclass(frozen=True, slots=True)
class _Part:
    centre: Array  # unit vector
    radius: float  # radians: every point of the part is within it of the centre
    samples: Array  # (N, 3)


def _part(polygon: BaseGeometry, tolerance_km: float) -> _Part:
    rings = [polygon.exterior, *polygon.interiors]
    samples = np.vstack([_ring_samples(np.asarray(ring.coords, dtype=np.float64)[:, :2],
                                       tolerance_km) for ring in rings])
    mean = samples.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-9:
        return _Part(np.array([0.0, 0.0, 1.0]), math.pi, samples)
    centre = mean / norm
    radius = float(np.arccos(np.clip(samples @ centre, -1.0, 1.0)).max())
    radius += tolerance_km / EARTH_RADIUS_KM
    # a boundary inside a cap smaller than a hemisphere encloses a part inside that cap
    return _Part(centre, radius if radius < math.pi / 2 else math.pi, samples)


def _min_angle(a: Array, b: Array) -> float:
    best = -1.0
    step = max(1, 2_000_000 // max(len(b), 1))
    for start in range(0, len(a), step):
        best = max(best, float((a[start:start + step] @ b.T).max()))
    return math.acos(min(1.0, max(-1.0, best)))


class Outline:
    """A shape on the sphere for lower-bound distances (see the module docstring)."""

    def __init__(self, geometry: BaseGeometry, *, tolerance_km: float = SAMPLE_TOLERANCE_KM,
                 margin_km: float = DATA_MARGIN_KM) -> None:
        self.geometry = geometry
        self.tolerance_km = tolerance_km
        self.margin_km = margin_km
        shapely.prepare(geometry)
        self.parts = tuple(_part(polygon, tolerance_km)
                           for polygon in shapely.get_parts(geometry) if not polygon.is_empty)
        self._centres = np.array([part.centre for part in self.parts]).reshape(-1, 3)
        self._radii = np.array([part.radius for part in self.parts], dtype=np.float64)

    @property
    def slack_km(self) -> float:
        """What every distance is lowered by: sample tolerance + data margin."""
        return self.tolerance_km + self.margin_km

    def contains(self, latitude: float, longitude: float) -> bool:
        return bool(shapely.contains_xy(self.geometry, longitude, latitude))

    def distance_km(self, latitude: float, longitude: float) -> float:
        """Lower bound on the distance from a point to the shape (0 inside)."""
        if self.contains(latitude, longitude):
            return 0.0
        point = unit_vector(latitude, longitude)
        lowers = np.arccos(np.clip(self._centres @ point, -1.0, 1.0)) - self._radii
        best = math.pi
        for index in np.argsort(lowers):
            if lowers[index] >= best:
                break
            samples = self.parts[index].samples
            nearest = float((samples @ point).max())
            best = min(best, math.acos(min(1.0, max(-1.0, nearest))))
        return max(lower_km(best * EARTH_RADIUS_KM) - self.slack_km, 0.0)

    def distance_to_km(self, other: Outline) -> float:
        """Lower bound on the distance between two shapes (0 when they meet)."""
        if shapely.intersects(self.geometry, other.geometry):
            return 0.0
        lowers = (np.arccos(np.clip(self._centres @ other._centres.T, -1.0, 1.0))
                  - self._radii[:, None] - other._radii[None, :])
        best = math.pi
        for flat in np.argsort(lowers, axis=None):
            i, j = divmod(int(flat), len(other.parts))
            if lowers[i, j] >= best:
                break
            best = min(best, _min_angle(self.parts[i].samples, other.parts[j].samples))
        return max(lower_km(best * EARTH_RADIUS_KM) - self.slack_km - other.slack_km, 0.0)

    def covering_cap(self) -> tuple[float, float, float]:
        """(latitude, longitude, radius_km) of a cap that holds the whole shape."""
        samples = np.vstack([part.samples for part in self.parts])
        mean = samples.mean(axis=0)
        centre = mean / max(float(np.linalg.norm(mean)), 1e-12)
        radius = float(np.arccos(np.clip(samples @ centre, -1.0, 1.0)).max())
        radius_km = upper_km(radius * EARTH_RADIUS_KM) + self.slack_km
        if radius >= math.pi / 2:
            radius_km = math.pi * EARTH_RADIUS_KM
        latitude = math.degrees(math.asin(max(-1.0, min(1.0, float(centre[2])))))
        longitude = math.degrees(math.atan2(float(centre[1]), float(centre[0])))
        return latitude, longitude, radius_km
