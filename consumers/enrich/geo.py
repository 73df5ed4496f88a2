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

import bisect
import datetime as dt
import ipaddress
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from itertools import chain
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
        return self.claim(country, as_name)

    def claim(self, country: str, as_name: str) -> GeoClaim | None:
        """The claim of a country code and an AS name (also for ClickHouse's answers)."""
        if not country and not as_name:
            return None
        return GeoClaim(self.name, self._version, country=country, as_name=as_name)

    def _lists(self) -> Any:
        if self._reader is None:
            raise ConfigError("Geoip2FastSource used before open()")
        # geoip2fast keeps its data in module globals of the module defining the class
        import sys

        return sys.modules[type(self._reader).__module__]

    def country_networks(self) -> Iterator[tuple[str, str]]:
        """``(cidr, country)`` covering exactly the public addresses :meth:`lookup` finds
        in a country range ("--" for its reserved ranges); elsewhere it answers "--" too,
        with no AS name. geoip2fast is range based (an address belongs to the range that
        starts at or below it, when that range reaches it): ranges become CIDRs per family."""
        data = self._lists()
        firsts: list[int] = list(chain.from_iterable(data.mainListFirstIP))
        lengths: list[int] = list(chain.from_iterable(data.mainListNetlength))
        ids = list(chain.from_iterable(data.mainListIDCountryCodes))
        codes = [name.split(":")[0] for name in data.mainListNamesCountry]
        values = ["--" if i < 16 else (codes[i] if len(codes[i]) == 2 else "") for i in ids]
        for bits, low, high in _FAMILIES:
            def reach(i: int, bits: int = bits) -> int:
                return firsts[i] + (1 << (bits - lengths[i])) - 1 if lengths[i] <= bits \
                    else -1
            yield from _range_cidrs(firsts, reach, values, bits, low, high)

    def as_networks(self) -> Iterator[tuple[str, str]]:
        """``(cidr, as_name)`` where :meth:`lookup` keeps an AS name: the AS block starting
        at or below the address, only when that block (as a CIDR) contains it."""
        data = self._lists()
        firsts: list[int] = list(chain.from_iterable(data.mainListFirstIPASN))
        lengths: list[int] = list(chain.from_iterable(data.mainListNetlengthASN))
        names = data.mainListNamesASN
        values = [names[i] or "" for i in chain.from_iterable(data.mainListIDASN)]
        for bits, low, high in _FAMILIES:
            def reach(i: int, bits: int = bits) -> int:
                first, length = firsts[i], lengths[i]
                # the block's own family (geoip2fast writes it as IPv4 below 2**32)
                if (first < _IPV4_END) != (bits == 32) or length > bits:
                    return -1
                size = 1 << (bits - length)
                return (first & ~(size - 1)) + size - 1
            yield from _range_cidrs(firsts, reach, values, bits, low, high)


_IPV4_END = 1 << 32
_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96, where ClickHouse keeps IPv4 in an ip_trie
_FAMILIES = ((32, 0, _IPV4_END - 1), (128, _IPV4_END, _MAPPED - 1),
             (128, _MAPPED + _IPV4_END, (1 << 128) - 1))
"""Address families as integer spans: IPv4, and IPv6 without ::/96 and ::ffff:0:0/96 (the
IPv4 addresses of an ip_trie; such IPv6 addresses are left to the Python lookups)."""


def _range_cidrs(firsts: list[int], reach: Callable[[int], int], values: list[str],
                 bits: int, low: int, high: int) -> Iterator[tuple[str, str]]:
    """Range ``i`` holds ``[firsts[i], min(reach(i), firsts[i + 1] - 1)]`` (sorted starts),
    clipped to ``[low, high]``; each non-empty value as CIDRs of ``bits``-bit addresses."""
    start = max(bisect.bisect_right(firsts, low) - 1, 0)
    stop = bisect.bisect_right(firsts, high)
    text = _ipv4_text if bits == 32 else _ipv6_text
    for i in range(start, stop):
        begin = max(firsts[i], low)
        end = min(reach(i), high, firsts[i + 1] - 1 if i + 1 < len(firsts) else high)
        for network, length in cidrs(begin, end, bits):
            yield f"{text(network)}/{length}", values[i]


def cidrs(begin: int, end: int, bits: int) -> Iterator[tuple[int, int]]:
    """The fewest ``(network, prefix length)`` covering ``[begin, end]`` exactly."""
    while begin <= end:
        size = (begin & -begin).bit_length() - 1 if begin else bits
        size = min(size, (end - begin + 1).bit_length() - 1)
        yield begin, bits - size
        begin += 1 << size


def _ipv4_text(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def _ipv6_text(value: int) -> str:
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


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

    def networks(self) -> Iterator[tuple[str, GeoClaim]]:
        """``(cidr, claim)`` for every network of the database with a claim (maxminddb skips
        the IPv4 aliases ::ffff:0:0/96 and 2002::/16: such addresses are left to
        :meth:`lookup`)."""
        if self._reader is None:
            raise ConfigError(f"MaxMindSource({self.path}) used before open()")
        for network, record in self._reader:
            if isinstance(record, Mapping):
                claim = claim_from_record(self._name, self._version, record)
                if claim is not None:
                    yield str(network), claim

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
