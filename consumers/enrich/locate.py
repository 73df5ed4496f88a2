"""Physics-only location: which countries can hold a point that lies in every given disc.

Constraint-based geolocation (CBG): an address that answered vantage point *i* in *r* ms
lies in the disc of radius ``r x 100 km`` (plus the vantage point's position uncertainty)
around it, so it lies in the intersection of all its discs. :func:`locate` returns every
country that intersection can touch, **never missing one** (a superset):

1. The smallest disc is sampled on a square grid of spacing ``g`` in its azimuthal
   equidistant (AE) frame. The inverse AE map never lengthens distances (radial scale 1,
   tangential ``sin(t)/t <= 1``), so every point of the disc lies within ``h = g/sqrt(2)``
   (the half-diagonal of a grid cell) of a grid point, measured on the sphere.
2. A grid point is kept when its exact great-circle distance to every disc centre is at
   most that disc's radius + ``h``: the true location's nearest grid point always is.
3. A country is a candidate when a kept grid point lies inside its shape (lon/lat test,
   exact for the shape as drawn) or within ``k (h + margin) + 1 km`` of its boundary
   projected into the same AE frame. ``margin`` is the Natural Earth allowance of
   ``sphere.py``; ``k = t/sin(t)`` for the largest angular distance ``t`` involved bounds how
   much the forward AE map can lengthen a distance; the boundary is densified to 0.1 deg
   (<= 11 km) before projecting, so its straight pieces stay within metres of the
   projected curve (the 1 km). In practice the kept points, grown by that tolerance, are
   wrapped in their convex hull (a superset again), and a country whose projected boundary
   does not meet the hull holds all of it or none (one kept point decides).

No grid point kept means the discs have no common point: the address is not in one place
(anycast, or a vantage position is wrong) and nothing is concluded. Discs larger than
:data:`LOCATE_MAX_KM` are not sampled (the answer would span continents anyway).
Frames (projected boundaries around one centre) are cached per centre: centres are the
vantage points, which repeat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import shapely

from consumers.enrich.countries import bloc, countries
from consumers.enrich.sphere import (
    DATA_MARGIN_KM,
    EARTH_RADIUS_KM,
    Array,
    unit_vector,
    unit_vectors,
    upper_km,
)

LOCATE_MAX_KM = 3000.0
GRID_POINTS = 6000  # about this many grid points in the smallest disc
GRID_MIN_KM = 5.0
DENSIFY_DEG = 0.1
_REACH_BUCKETS_KM = (400.0, 1000.0, 2000.0, 3400.0)  # frames are cached per centre + bucket
_FAR = math.radians(120.0)  # boundary beyond this angle from a frame centre is dropped


@dataclass(frozen=True, slots=True)
class Disc:
    """Where one RTT puts an address: within ``radius_km`` of (latitude, longitude). (For a
    vantage point known only by its country, a disc covering that country grown by the
    RTT's reach.)"""

    latitude: float
    longitude: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class Location:
    """The countries an intersection of discs can touch (a superset, never missing one)."""

    countries: frozenset[str]
    grid_km: float  # grid spacing in the smallest disc's AE frame
    points: int  # grid points inside every disc
    tolerance_km: float  # how far from a kept grid point a country may be and still count

    @property
    def empty(self) -> bool:
        """True when no point lies in every disc (not one place: anycast or bad data)."""
        return self.points == 0

    @property
    def blocs(self) -> frozenset[str]:
        return frozenset(bloc(code) for code in self.countries)

    def as_dict(self) -> dict[str, object]:
        return {"countries": sorted(self.countries), "blocs": sorted(self.blocs),
                "grid_km": round(self.grid_km, 1), "grid_points": self.points,
                "tolerance_km": round(self.tolerance_km, 1)}


@cache
def _world_parts() -> tuple[tuple[tuple[str, ...], tuple[shapely.Polygon, ...]], Array, Array]:
    """Every polygon part of every country: (codes, lon/lat polygons), cap centres (unit
    vectors) and cap radii (radians). A cap holds every vertex of its part, widened by half
    the longest edge measured as ``R sqrt(dlat^2 + dlon^2)`` (never shorter than the edge
    drawn straight in lon/lat), so it holds the edges too."""
    codes: list[str] = []
    polygons: list[shapely.Polygon] = []
    for code, country in countries().items():
        for polygon in shapely.get_parts(country.geometry):
            shapely.prepare(polygon)
            codes.append(code)
            polygons.append(polygon)
    rings = shapely.get_exterior_ring(np.array(polygons, dtype=object))
    coords, index = shapely.get_coordinates(rings, return_index=True)
    vectors = unit_vectors(coords[:, 1], coords[:, 0])
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    sums = np.add.reduceat(vectors, starts, axis=0)
    centres = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    angles = np.arccos(np.clip(np.einsum("ij,ij->i", vectors, centres[index]), -1.0, 1.0))
    radii = np.maximum.reduceat(angles, starts)
    steps = np.hypot(*np.radians(np.diff(coords, axis=0)).T)
    steps[index[1:] != index[:-1]] = 0.0
    longest = np.maximum.reduceat(np.r_[steps, 0.0], starts)
    radii = radii + longest / 2
    radii[radii >= math.pi / 2] = math.pi
    return (tuple(codes), tuple(polygons)), centres, radii


def _clip_box(lat0: float, lon0: float, reach_km: float) -> tuple[float, ...] | None:
    """A lon/lat box holding the cap of ``reach_km`` around a point (None: the cap reaches
    a pole or the antimeridian, use everything)."""
    angle = reach_km / EARTH_RADIUS_KM
    south, north = lat0 - math.degrees(angle), lat0 + math.degrees(angle)
    if south <= -89.0 or north >= 89.0 or angle >= math.pi / 2:
        return None
    spread = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(lat0)))))
    if spread >= 90.0 or lon0 - spread <= -180.0 or lon0 + spread >= 180.0:
        return None
    return (lon0 - spread - 0.1, south - 0.1, lon0 + spread + 0.1, north + 0.1)


def _forward(lat0: float, lon0: float, lonlat: Array) -> tuple[Array, Array]:
    """AE plane coordinates (km, x east, y north) and angular distances of lon/lat points."""
    phi0, lam0 = math.radians(lat0), math.radians(lon0)
    phi, dlam = np.radians(lonlat[:, 1]), np.radians(lonlat[:, 0]) - lam0
    cos_t = math.sin(phi0) * np.sin(phi) + math.cos(phi0) * np.cos(phi) * np.cos(dlam)
    east = np.cos(phi) * np.sin(dlam)
    north = math.cos(phi0) * np.sin(phi) - math.sin(phi0) * np.cos(phi) * np.cos(dlam)
    theta = np.arctan2(np.hypot(east, north), cos_t)
    azimuth = np.arctan2(east, north)
    rho = theta * EARTH_RADIUS_KM
    return np.stack([rho * np.sin(azimuth), rho * np.cos(azimuth)], axis=-1), theta


def _inverse(lat0: float, lon0: float, xy: Array) -> tuple[Array, Array]:
    """Latitude and longitude (degrees) of AE plane points."""
    phi0, lam0 = math.radians(lat0), math.radians(lon0)
    theta = np.hypot(xy[:, 0], xy[:, 1]) / EARTH_RADIUS_KM
    azimuth = np.arctan2(xy[:, 0], xy[:, 1])
    sin_phi = math.sin(phi0) * np.cos(theta) + math.cos(phi0) * np.sin(theta) * np.cos(azimuth)
    phi = np.arcsin(np.clip(sin_phi, -1.0, 1.0))
    lam = lam0 + np.arctan2(np.sin(azimuth) * np.sin(theta) * math.cos(phi0),
                            np.cos(theta) - math.sin(phi0) * sin_phi)
    return np.degrees(phi), (np.degrees(lam) + 540.0) % 360.0 - 180.0


@dataclass(frozen=True, slots=True)
class _Frame:
    line_codes: tuple[str, ...]  # per projected boundary piece
    lines: shapely.STRtree  # projected boundary pieces (AE plane, km)
    part_codes: tuple[str, ...]  # per polygon part
    parts: shapely.STRtree  # the parts themselves (lon/lat), for "holds a point"


@lru_cache(maxsize=512)
def _frame(lat0: float, lon0: float, reach_km: float) -> _Frame:
    """Projected boundaries of every part that may come within ``reach_km`` of a centre;
    parts are clipped to a lon/lat box around the reach first (the clip's own edges lie
    outside the reach, so no located region ever meets them)."""
    (all_codes, all_polygons), centres, radii = _world_parts()
    lower = np.arccos(np.clip(centres @ unit_vector(lat0, lon0), -1.0, 1.0)) - radii
    selected = np.flatnonzero(lower * EARTH_RADIUS_KM - DATA_MARGIN_KM <= reach_km)
    polygons = np.array([all_polygons[i] for i in selected], dtype=object)
    codes = [all_codes[i] for i in selected]
    box = _clip_box(lat0, lon0, reach_km + DATA_MARGIN_KM)
    near = polygons if box is None else shapely.clip_by_rect(polygons, *box)
    rings, owner = shapely.get_parts(shapely.segmentize(shapely.boundary(near), DENSIFY_DEG),
                                     return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    xy, theta = _forward(lat0, lon0, coords)
    inside = theta <= _FAR  # beyond, antipodal distortion: dropped (far outside any reach)
    # pieces: runs of consecutive near points of one ring
    run = np.cumsum(np.r_[True, (ring_of[1:] != ring_of[:-1]) | (inside[1:] != inside[:-1])])
    run, xy, ring_of = run[inside], xy[inside], ring_of[inside]
    counts = np.bincount(run)
    long_enough = counts[run] >= 2
    run, xy, ring_of = run[long_enough], xy[long_enough], ring_of[long_enough]
    first = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    dense_run = np.cumsum(np.r_[True, run[1:] != run[:-1]]) - 1
    lines = shapely.linestrings(xy, indices=dense_run) if len(xy) else np.array([])
    line_codes = tuple(codes[owner[ring_of[i]]] for i in first)
    return _Frame(line_codes, shapely.STRtree(lines), tuple(codes), shapely.STRtree(polygons))


def _grid(disc: Disc, spacing: float) -> Array:
    half = disc.radius_km + spacing
    axis = np.arange(-half, half + spacing / 2, spacing)
    xs, ys = np.meshgrid(axis, axis)
    xy = np.stack([xs.ravel(), ys.ravel()], axis=-1)
    inside: Array = xy[np.hypot(xy[:, 0], xy[:, 1]) <= disc.radius_km + spacing / math.sqrt(2)]
    return inside


def _row_ends(xy: Array) -> Array:
    """The first and last kept point of every grid row: they span the same convex hull."""
    order = np.lexsort((xy[:, 0], xy[:, 1]))
    ys = xy[order, 1]
    starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
    ends = np.r_[starts[1:] - 1, len(order) - 1]
    picked: Array = xy[order[np.unique(np.r_[starts, ends])]]
    return picked


def locate(discs: Sequence[Disc]) -> Location | None:
    """The countries that the intersection of ``discs`` can touch (see module docstring);
    None when the smallest disc is larger than :data:`LOCATE_MAX_KM`."""
    if not discs:
        return None
    # radii on the sphere that hold every point within the discs on the ellipsoid
    discs = [Disc(d.latitude, d.longitude, upper_km(d.radius_km)) for d in discs]
    smallest = min(discs, key=lambda d: d.radius_km)
    if smallest.radius_km > LOCATE_MAX_KM:
        return None
    spacing = max(GRID_MIN_KM, (smallest.radius_km + GRID_MIN_KM) * math.sqrt(math.pi /
                                                                              GRID_POINTS))
    half_diagonal = spacing / math.sqrt(2)
    xy = _grid(smallest, spacing)
    latitude, longitude = _inverse(smallest.latitude, smallest.longitude, xy)
    points = unit_vectors(latitude, longitude)
    keep = np.ones(len(points), dtype=bool)
    for disc in discs:
        limit = (disc.radius_km + half_diagonal) / EARTH_RADIUS_KM
        keep &= (points @ unit_vector(disc.latitude, disc.longitude)) >= math.cos(
            min(limit, math.pi))
    reach = (smallest.radius_km + 2 * half_diagonal + DATA_MARGIN_KM) / EARTH_RADIUS_KM
    stretch = reach / math.sin(reach)
    tolerance = stretch * upper_km(half_diagonal + DATA_MARGIN_KM) + 1.0
    kept = int(keep.sum())
    if not kept:
        return Location(frozenset(), spacing, 0, tolerance)
    xy, latitude, longitude = xy[keep], latitude[keep], longitude[keep]
    needed = smallest.radius_km + 2 * half_diagonal + tolerance
    bucket = next(r for r in (*_REACH_BUCKETS_KM, needed) if r >= needed)
    frame = _frame(round(smallest.latitude, 6), round(smallest.longitude, 6), bucket)
    # every kept point, grown by the tolerance: a country whose boundary does not come into
    # this region either holds all of it or none of it (one kept point decides which)
    region = shapely.buffer(shapely.convex_hull(shapely.multipoints(_row_ends(xy))), tolerance)
    found = {frame.line_codes[int(i)] for i in frame.lines.query(region,
                                                                 predicate="intersects")}
    probe = shapely.Point(float(longitude[0]), float(latitude[0]))
    found.update(frame.part_codes[int(i)] for i in frame.parts.query(probe,
                                                                     predicate="within"))
    return Location(frozenset(found), spacing, kept, tolerance)
