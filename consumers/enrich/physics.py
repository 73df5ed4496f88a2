"""Round-trip-time physics: where a reply can have come from.

Light in fibre covers about 200 km per millisecond, so a reply with round-trip time *r* ms
comes from within ``r x 100`` km of the vantage point (half the round trip, no faster path
exists). If the nearest point of the United States is farther than that, the reply is
**provably not from the US**, whatever a geo database claims.

The US is its full territory from Natural Earth (``countries.us_territory``: the states,
Puerto Rico, the US Virgin Islands, Guam, the Northern Mariana Islands, American Samoa, the
minor outlying islands and Guantanamo Bay). A vantage point is a point with an uncertainty
disc, or, known only by its country, anywhere in that country's shape
(``Vantage.area``). Every distance is a lower bound (``sphere.py``: sample tolerance and
data margin subtracted), computed once per vantage position and cached: vantage points
repeat on every reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from consumers.enrich.countries import country_outline, us_outline
from consumers.enrich.sphere import EARTH_RADIUS_KM, great_circle_km, lower_km
from consumers.enrich.vantage import Vantage

__all__ = [
    "EARTH_RADIUS_KM", "KM_PER_MS_RTT", "UsBound", "bound_km", "great_circle_km",
    "region_distance_km", "us_bound", "vantage_distance_km", "vantage_us_distance_km",
]

KM_PER_MS_RTT = 100.0  # 200 km/ms in fibre, halved for the round trip
KM_PER_MS_ONE_WAY = 200.0


def bound_km(rtt_ms: float) -> float:
    """Farthest distance (km) from the vantage point a reply with this RTT can come from."""
    return max(rtt_ms, 0.0) * KM_PER_MS_RTT


@lru_cache(maxsize=65536)
def _point_distance_km(latitude: float, longitude: float, code: str) -> float:
    outline = us_outline() if code == "US*" else country_outline(code)
    return outline.distance_km(latitude, longitude) if outline is not None else 0.0


@lru_cache(maxsize=65536)
def _area_distance_km(area: str, code: str) -> float:
    outline = country_outline(area)
    other = us_outline() if code == "US*" else country_outline(code)
    if outline is None or other is None:
        return 0.0
    return outline.distance_to_km(other)


def vantage_distance_km(vantage: Vantage, code: str) -> float:
    """Lower bound on the distance from anywhere the vantage point may be to the shape of
    ``code`` (an ISO code; ``US*`` is all US territory). 0 when it has no shape."""
    if vantage.area:
        return _area_distance_km(vantage.area, code)
    distance = _point_distance_km(vantage.latitude, vantage.longitude, code)
    return max(distance - vantage.uncertainty_km, 0.0)


def vantage_us_distance_km(vantage: Vantage) -> float:
    """Lower bound on the distance from the vantage point to any US territory."""
    return vantage_distance_km(vantage, "US*")


def region_distance_km(a: Vantage, b: Vantage) -> float:
    """Lower bound on the distance between two vantage points' possible positions (their
    covering discs: centre distance minus both uncertainties)."""
    distance = lower_km(great_circle_km(a.latitude, a.longitude, b.latitude, b.longitude))
    return max(distance - a.uncertainty_km - b.uncertainty_km, 0.0)


@dataclass(frozen=True, slots=True)
class UsBound:
    """What physics says about one reply and the US."""

    rtt_ms: float
    bound_km: float
    us_distance_km: float  # lower bound from the vantage point's possible positions
    vantage_uncertainty_km: float  # informative: already applied to us_distance_km

    @property
    def us_possible(self) -> bool:
        """False when the reply provably comes from outside the US."""
        return self.bound_km >= self.us_distance_km

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "rtt_ms": self.rtt_ms,
            "bound_km": round(self.bound_km, 1),
            "us_distance_km": round(self.us_distance_km, 1),
            "vantage_uncertainty_km": self.vantage_uncertainty_km,
            "us_possible": self.us_possible,
        }


def us_bound(rtt_ms: float, vantage: Vantage) -> UsBound:
    """Physics for a reply with ``rtt_ms`` seen from ``vantage``."""
    return UsBound(rtt_ms, bound_km(rtt_ms), vantage_us_distance_km(vantage),
                   vantage.uncertainty_km)
