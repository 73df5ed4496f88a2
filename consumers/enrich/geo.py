"""Geo sources: what databases *claim* about an address, each naming its dataset version.

One small interface (:class:`GeoSource`) with three kinds behind it:

* :class:`Geoip2FastSource` — the offline default: the GeoLite2 country + AS-name data that
  the PyPI package ``geoip2fast`` bundles (works on a fresh machine, no download);
* :class:`MaxMindSource` — any MaxMind-format ``.mmdb`` the user configures (GeoLite2
  City/Country/ASN, IPinfo Lite, DB-IP Lite), read with ``maxminddb``;
* :class:`~consumers.enrich.cloud.CloudRangesSource` — the clouds' published IP-range
  files (in ``cloud.py``).

A claim is only a claim: physics (``physics.py``) decides whether it can be true.
Constructors do no I/O; ``open_*`` functions open files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from schemas.errors import ConfigError


@dataclass(frozen=True, slots=True)
class GeoClaim:
    """What one source says about one address."""

    source: str  # e.g. "geoip2fast", "mmdb:GeoLite2-City", "aws-ip-ranges"
    dataset_version: str
    country: str = ""  # ISO 3166-1 alpha-2 where the address is said to be; "" unknown
    registered_country: str = ""  # where the network is registered, when the source says
    latitude: float | None = None
    longitude: float | None = None
    accuracy_km: float | None = None
    asn: int | None = None
    as_name: str = ""
    cloud_provider: str = ""  # "Amazon Web Services", ... for cloud range claims
    region: str = ""  # cloud region, e.g. "eu-west-1"
    anycast: bool = False  # the source says the prefix is global/anycast (no one place)
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        # the fields by hand, not dataclasses.asdict (a deep copy: the hot path of writing
        # hop verdicts, measured in bench/ingest.py); the same dict
        values = ((name, getattr(self, name)) for name in _CLAIM_FIELDS)
        return {k: dict(v) if k == "extra" else v for k, v in values
                if v not in (None, "", {}, False)}


_CLAIM_FIELDS = tuple(f.name for f in fields(GeoClaim))


class GeoSource(Protocol):
    """A source of claims. ``lookup`` returns None when it knows nothing about the address."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def lookup(self, address: str) -> GeoClaim | None: ...


@lru_cache(maxsize=1 << 17)
def is_public(address: str) -> bool:
    """False for private, loopback, link-local, shared (CGN) and other non-global space
    (cached: every reply address is asked about several times per window)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_global


class Geoip2FastSource:
    """The GeoLite2 Country + ASN-name data bundled in ``geoip2fast`` (IPv4 and IPv6)."""

    DATA_FILE = "geoip2fast-asn-ipv6.dat.gz"

    def __init__(self) -> None:
        self._reader: Any = None
        self._version = ""

    def open(self) -> Geoip2FastSource:
        from geoip2fast import GeoIP2Fast  # imported here: loading takes ~0.5 s

        self._reader = GeoIP2Fast(geoip2fast_data_file=self.DATA_FILE, verbose=False)
        info = self._reader.get_database_info()
        self._version = f"{info['source_info']} (geoip2fast dat v{info['dat_version']})"
        return self

    @property
    def name(self) -> str:
        return "geoip2fast"

    @property
    def version(self) -> str:
        return self._version

    def lookup(self, address: str) -> GeoClaim | None:
        if self._reader is None:
            raise ConfigError("Geoip2FastSource used before open()")
        if not is_public(address):
            return None
        detail = self._reader.lookup(address)
        country = detail.country_code if len(detail.country_code or "") == 2 else ""
        as_name = detail.asn_name or ""
        # geoip2fast can return the nearest lower AS block, which need not contain the
        # address (seen for 91.198.174.225): keep the AS name only when it does.
        if as_name and not _contains(detail.asn_cidr, address):
            as_name = ""
        if not country and not as_name:
            return None
        return GeoClaim(self.name, self._version, country=country, as_name=as_name)


def _contains(cidr: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


class MaxMindSource:
    """A MaxMind-format database (``.mmdb``) read with ``maxminddb``.

    Understands the GeoLite2/GeoIP2 City and Country layout (``country.iso_code``,
    ``registered_country``, ``location``), the ASN layout (``autonomous_system_number``,
    ``autonomous_system_organization``, also DB-IP ASN Lite) and IPinfo Lite
    (``country_code``, ``asn`` as "AS15169", ``as_name``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: Any = None
        self._name = f"mmdb:{path.name}"
        self._version = ""

    def open(self) -> MaxMindSource:
        import maxminddb

        try:
            self._reader = maxminddb.open_database(str(self.path))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot open geo database {self.path}: {exc}") from exc
        meta = self._reader.metadata()
        built = dt.datetime.fromtimestamp(meta.build_epoch, dt.UTC).date().isoformat()
        self._name = f"mmdb:{meta.database_type}"
        self._version = f"{meta.database_type} built {built} ({self.path.name})"
        return self

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    def lookup(self, address: str) -> GeoClaim | None:
        if self._reader is None:
            raise ConfigError(f"MaxMindSource({self.path}) used before open()")
        if not is_public(address):
            return None
        record = self._reader.get(address)
        if not isinstance(record, Mapping):
            return None
        return claim_from_record(self._name, self._version, record)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _iso(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("iso_code", "")
    return value.upper() if isinstance(value, str) and len(value) == 2 else ""


def claim_from_record(source: str, version: str, record: Mapping[str, Any]) -> GeoClaim | None:
    """Read the fields of the known mmdb layouts into one claim."""
    country = _iso(record.get("country")) or _iso(record.get("country_code"))
    registered = _iso(record.get("registered_country"))
    location = record.get("location")
    latitude = longitude = accuracy = None
    if isinstance(location, Mapping) and "latitude" in location and "longitude" in location:
        latitude, longitude = float(location["latitude"]), float(location["longitude"])
        if "accuracy_radius" in location:
            accuracy = float(location["accuracy_radius"])
    asn: int | None = None
    raw_asn = record.get("autonomous_system_number", record.get("asn"))
    if isinstance(raw_asn, int):
        asn = raw_asn
    elif isinstance(raw_asn, str) and raw_asn.upper().removeprefix("AS").isdigit():
        asn = int(raw_asn.upper().removeprefix("AS"))
    as_name = str(record.get("autonomous_system_organization") or record.get("as_name") or "")
    if not (country or registered or asn or as_name):
        return None
    return GeoClaim(
        source, version, country=country, registered_country=registered, latitude=latitude,
        longitude=longitude, accuracy_km=accuracy, asn=asn, as_name=as_name,
    )


@lru_cache(maxsize=1)
def default_source() -> Geoip2FastSource:
    """The offline default, opened once per process."""
    return Geoip2FastSource().open()
