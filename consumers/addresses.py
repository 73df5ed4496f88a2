"""Which application a measured path belongs to: per vantage point and per period (pure).

An application's hostnames may be names or IP addresses. A path from vantage point *v* to
address *a* belongs to application *A* when

* *a* is one of *A*'s hostnames (an address literal), or
* the traceroute was aimed at one of *A*'s hostnames (``dst_name``: the probe resolved it
  itself), or
* *v*'s own DNS answers for one of *A*'s hostnames in the period gave *a* — the A/AAAA at the
  **end** of the CNAME chain (``consumers.enrich.cname``). Another vantage point's answers do
  not count: GeoDNS and CDNs answer differently per place.

The CNAME chain behind the mapping is kept (:meth:`AddressMap.chains_for`) and names the
provider (:meth:`AddressMap.named_operator`), which feeds the legal axis of the path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from consumers.enrich.cname import Resolution, SuffixTable, named_operator, norm
from consumers.enrich.legal import LegalVerdict, OperatorTable
from consumers.enrich.vantage import vantage_key
from consumers.enrich.window import TracedPath


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AddressMap:
    """Application <-> address per vantage point, from the inventory and DNS answers."""

    def __init__(self, applications: Mapping[str, Sequence[str]],
                 resolutions: Iterable[Resolution], suffixes: SuffixTable,
                 operators: OperatorTable) -> None:
        self.applications = {app: tuple(norm(h) for h in hosts)
                             for app, hosts in applications.items()}
        self.by_name: dict[str, set[str]] = {}
        for app, hosts in self.applications.items():
            for host in hosts:
                self.by_name.setdefault(host, set()).add(app)
        self.suffixes = suffixes
        self.operators = operators
        # (vantage key, address) -> hostnames; (vantage key, hostname) -> latest chain
        self._resolved: dict[tuple[str, str], set[str]] = {}
        self._chains: dict[tuple[str, str], Resolution] = {}
        for found in resolutions:
            for address in found.addresses:
                self._resolved.setdefault((found.vantage_key, address), set()).add(
                    found.hostname)
            key = (found.vantage_key, found.hostname)
            known = self._chains.get(key)
            if known is None or found.timestamp >= known.timestamp:
                self._chains[key] = found
        self._named: dict[tuple[str, ...], LegalVerdict | None] = {}

    @staticmethod
    def vantage_of(path: TracedPath) -> str:
        return vantage_key(path.probe_id, path.vantage_point)

    def hostnames_of(self, path: TracedPath) -> set[str]:
        """The hostnames (of any application) this path was measuring, for its vantage
        point: its target name, and the names its DNS answers mapped to the address."""
        names = set(self._resolved.get((self.vantage_of(path), path.destination_address), ()))
        if path.destination_name:
            names.add(norm(path.destination_name))
        return names

    def applications_of(self, path: TracedPath) -> tuple[str, ...]:
        found = set(self.by_name.get(path.destination_address, ()))
        for name in self.hostnames_of(path):
            found |= self.by_name.get(name, set())
        return tuple(sorted(found))

    def destination_applications(self, paths: Iterable[TracedPath]) -> dict[str, set[str]]:
        """destination address -> applications (the path graph's findings name them)."""
        out: dict[str, set[str]] = {}
        for path in paths:
            apps = self.applications_of(path)
            if apps:
                out.setdefault(path.destination_address, set()).update(apps)
        return out

    def chains_for(self, vantage: str, hostnames: Iterable[str]) -> list[Resolution]:
        return [found for name in sorted(set(hostnames))
                if (found := self._chains.get((vantage, norm(name)))) is not None]

    def named_operator(self, path: TracedPath) -> LegalVerdict | None:
        """The operator the CNAME chain of this path's hostname names, for its vantage
        point (None: no chain, or no known suffix in it)."""
        for found in self.chains_for(self.vantage_of(path), self.hostnames_of(path)):
            named = self.named_operator_of_chain(found.chain)
            if named is not None:
                return named
        return None

    def named_operator_of_chain(self, chain: tuple[str, ...]) -> LegalVerdict | None:
        if len(chain) < 2:
            return None
        if chain not in self._named:
            self._named[chain] = named_operator(chain, self.suffixes, self.operators)
        return self._named[chain]

    def every_hostname(self) -> list[str]:
        return sorted({h for hosts in self.applications.values() for h in hosts
                       if not is_address(h)})
