"""The clouds' published IP ranges as a geo source: address -> provider, region -> place.

Reads the files as the providers publish them (paths come from settings; nothing is
downloaded here):

* AWS ``ip-ranges.json``: ``prefixes[].ip_prefix`` / ``ipv6_prefixes[].ipv6_prefix`` with
  ``region`` ("GLOBAL" = edge/anycast, no one place) and ``service``; version ``syncToken``
  + ``createDate``;
* Azure Service Tags (``ServiceTags_Public_*.json``): ``values[].properties`` with
  ``region`` and ``addressPrefixes``; version ``changeNumber``;
* Google Cloud ``cloud.json``: ``prefixes[].ipv4Prefix|ipv6Prefix`` with ``scope`` (region);
  version ``syncToken`` + ``creationTime``.

Regions map to a country and coordinates through ``data/cloud_regions.json``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from consumers.enrich.geo import GeoClaim, is_public
from schemas.errors import ConfigError

PROVIDERS = {
    "aws": "Amazon Web Services",
    "azure": "Microsoft Azure",
    "gcp": "Google Cloud",
}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def cloud_regions() -> dict[str, Any]:
    text = (resources.files("consumers.enrich") / "data" / "cloud_regions.json").read_text(
        encoding="utf-8"
    )
    document: dict[str, Any] = json.loads(text)
    return document


@dataclass(frozen=True, slots=True)
class CloudRange:
    provider: str  # "aws" | "azure" | "gcp"
    region: str
    service: str


def _aws(document: dict[str, Any]) -> Iterator[tuple[str, CloudRange]]:
    for item in document.get("prefixes", []):
        yield item["ip_prefix"], CloudRange("aws", item.get("region", ""), item.get("service", ""))
    for item in document.get("ipv6_prefixes", []):
        yield item["ipv6_prefix"], CloudRange(
            "aws", item.get("region", ""), item.get("service", "")
        )


def _azure(document: dict[str, Any]) -> Iterator[tuple[str, CloudRange]]:
    for value in document.get("values", []):
        properties = value.get("properties", {})
        service = properties.get("systemService", "") or value.get("name", "")
        for prefix in properties.get("addressPrefixes", []):
            yield prefix, CloudRange("azure", properties.get("region", ""), service)


def _gcp(document: dict[str, Any]) -> Iterator[tuple[str, CloudRange]]:
    for item in document.get("prefixes", []):
        prefix = item.get("ipv4Prefix") or item.get("ipv6Prefix")
        if prefix:
            yield prefix, CloudRange("gcp", item.get("scope", ""), item.get("service", ""))


_READERS = {"aws": _aws, "azure": _azure, "gcp": _gcp}


def _version(provider: str, document: dict[str, Any]) -> str:
    if provider == "azure":
        return f"changeNumber {document.get('changeNumber', '?')} ({document.get('cloud', '')})"
    created = document.get("createDate" if provider == "aws" else "creationTime", "?")
    return f"syncToken {document.get('syncToken', '?')} created {created}"


class CloudRangesSource:
    """Longest-prefix match over the configured cloud range files."""

    def __init__(self, files: dict[str, Path]) -> None:
        unknown = set(files) - set(_READERS)
        if unknown:
            raise ConfigError(f"unknown cloud range provider(s): {sorted(unknown)}")
        self.files = files
        self._by_length: dict[int, dict[tuple[int, int], CloudRange]] = {}
        self._versions: dict[str, str] = {}

    def open(self) -> CloudRangesSource:
        for provider, path in sorted(self.files.items()):
            try:
                document = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read {provider} IP ranges {path}: {exc}") from exc
            self._versions[provider] = _version(provider, document)
            for prefix, entry in _READERS[provider](document):
                try:
                    network = ipaddress.ip_network(prefix, strict=False)
                except ValueError:
                    continue
                slot = network.prefixlen + 200 * (network.version == 6)
                table = self._by_length.setdefault(slot, {})
                key = (network.version, int(network.network_address))
                known = table.get(key)
                if known is None or (not known.region and entry.region):
                    table[key] = entry
        return self

    @property
    def name(self) -> str:
        return "cloud-ip-ranges"

    @property
    def version(self) -> str:
        return "; ".join(f"{p}: {v}" for p, v in sorted(self._versions.items()))

    def match(self, address: str) -> tuple[Network, CloudRange] | None:
        ip = ipaddress.ip_address(address)
        bits = 32 if ip.version == 4 else 128
        offset = 200 * (ip.version == 6)
        for length in range(bits, -1, -1):
            table = self._by_length.get(length + offset)
            if not table:
                continue
            network = ipaddress.ip_network(f"{ip}/{length}", strict=False)
            entry = table.get((ip.version, int(network.network_address)))
            if entry is not None:
                return network, entry
        return None

    def lookup(self, address: str) -> GeoClaim | None:
        if not is_public(address):
            return None
        found = self.match(address)
        if found is None:
            return None
        return self.claim(*found)

    def networks(self) -> Iterator[tuple[str, GeoClaim]]:
        """``(cidr, claim)`` of every range kept (one per prefix, as :meth:`match` sees
        them): a longest-prefix match over these gives what :meth:`lookup` gives."""
        for slot, table in sorted(self._by_length.items()):
            length = slot - 200 if slot >= 200 else slot
            for (version, address), entry in table.items():
                network: Network = ipaddress.IPv4Network((address, length)) if version == 4 \
                    else ipaddress.IPv6Network((address, length))
                yield str(network), self.claim(network, entry)

    def claim(self, network: Network, entry: CloudRange) -> GeoClaim:
        regions = cloud_regions().get(entry.provider, {})
        place = regions.get(entry.region)
        anycast = entry.region.upper() == "GLOBAL"
        return GeoClaim(
            source=f"{entry.provider}-ip-ranges",
            dataset_version=self._versions.get(entry.provider, ""),
            country=place[0] if place else "",
            latitude=float(place[1]) if place else None,
            longitude=float(place[2]) if place else None,
            accuracy_km=100.0 if place else None,
            cloud_provider=PROVIDERS[entry.provider],
            region=entry.region,
            anycast=anycast,
            extra={"prefix": str(network), "service": entry.service,
                   "place": str(place[3]) if place else ""},
        )
