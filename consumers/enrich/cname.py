"""DNS answers -> which addresses a vantage point got for a hostname, and who the CNAME
chain says serves it (pure).

A vantage point's DNS answer for ``gemeente.topdesk.net`` is a chain: CNAME records from
the name to the name that has the addresses, then the A/AAAA records **at the end of the
chain** (records for other owners, such as glue in the additional section, are not
answers). :func:`resolutions` builds one :class:`Resolution` per response and queried
hostname from ``dns_answers`` rows. A chain through a provider's name space
(``*.cloudfront.net``, ``*.azurefd.net``, ``*.edgekey.net``, ...) names the provider; the
curated, sourced, versioned table ``data/cname_suffixes.json`` maps suffixes to operators of
``data/operators.json`` (:func:`named_operator` gives the legal verdict it implies).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from consumers.enrich.legal import LegalVerdict, OperatorTable
from consumers.enrich.vantage import vantage_key
from schemas.normalize import epoch_seconds

MAX_CHAIN = 16


def norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Suffix:
    suffix: str
    provider: str
    operator: str  # an id of the operators table
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SuffixTable:
    dataset: str
    version: str
    suffixes: tuple[Suffix, ...]

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.version}"

    def match(self, name: str) -> Suffix | None:
        """The longest suffix ``name`` ends in (on a label boundary)."""
        name = norm(name)
        best = None
        for entry in self.suffixes:
            if (name == entry.suffix or name.endswith("." + entry.suffix)) and (
                    best is None or len(entry.suffix) > len(best.suffix)):
                best = entry
        return best


def parse_suffixes(document: Mapping[str, Any]) -> SuffixTable:
    return SuffixTable(str(document["dataset"]), str(document["version"]), tuple(
        Suffix(norm(str(item["suffix"])), str(item["provider"]), str(item["operator"]),
               tuple(str(s) for s in item["sources"]))
        for item in document["suffixes"]))


@cache
def default_suffixes() -> SuffixTable:
    text = (resources.files("consumers.enrich") / "data" / "cname_suffixes.json").read_text(
        encoding="utf-8")
    return parse_suffixes(json.loads(text))


@dataclass(frozen=True, slots=True)
class Resolution:
    """What one DNS response told one vantage point about one hostname."""

    hostname: str
    vantage_key: str
    timestamp: int
    chain: tuple[str, ...]  # the hostname, then every CNAME target in order
    addresses: frozenset[str]

    @property
    def chain_text(self) -> str:
        return " -> ".join(self.chain)


def follow(hostname: str, cnames: Mapping[str, str]) -> tuple[str, ...]:
    """The CNAME chain from ``hostname`` (loops and very long chains are cut)."""
    chain = [norm(hostname)]
    while chain[-1] in cnames and len(chain) <= MAX_CHAIN:
        target = cnames[chain[-1]]
        if target in chain:
            break
        chain.append(target)
    return tuple(chain)


def resolutions(rows: Iterable[Mapping[str, Any]],
                hostnames: Iterable[str] | None = None) -> list[Resolution]:
    """One resolution per DNS response (``dns_answers`` rows: answer section, A/AAAA/CNAME)
    and queried hostname; only ``hostnames`` when given."""
    wanted = {norm(h) for h in hostnames} if hostnames is not None else None
    responses: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if row.get("section", "answer") != "answer":
            continue
        query = norm(str(row.get("query_name") or ""))
        if not query or (wanted is not None and query not in wanted):
            continue
        stamp = epoch_seconds(row["timestamp"])
        key = (row["source"], row["measurement_id"], row["probe_id"], stamp,
               row.get("response_index", 0), query)
        found = responses.setdefault(key, {
            "vantage": vantage_key(int(row["probe_id"]), str(row.get("vantage_point") or "")),
            "timestamp": stamp, "cnames": {}, "records": []})
        kind = str(row.get("record_type") or "")
        owner = norm(str(row.get("record_name") or query))
        data = str(row.get("record_data") or "")
        if kind == "CNAME" and data:
            found["cnames"].setdefault(owner, norm(data))
        elif kind in ("A", "AAAA") and data:
            found["records"].append((owner, data))
    out = []
    for key, found in responses.items():
        chain = follow(key[-1], found["cnames"])
        addresses = frozenset(data for owner, data in found["records"] if owner == chain[-1])
        out.append(Resolution(key[-1], found["vantage"], found["timestamp"], chain, addresses))
    out.sort(key=lambda r: (r.timestamp, r.vantage_key, r.hostname))
    return out


def named_operator(chain: Iterable[str], suffixes: SuffixTable,
                   operators: OperatorTable) -> LegalVerdict | None:
    """The operator a CNAME chain names (the first name with a known suffix), if any."""
    names = list(chain)
    for index, name in enumerate(names):
        entry = suffixes.match(name)
        if entry is None:
            continue
        op = operators.by_id(entry.operator)
        if op is None:
            continue
        path = " -> ".join(names[: index + 1])
        return LegalVerdict(
            operator=op.operator, parent=op.parent, country=op.parent_country,
            confidence="medium", cloud_act=op.cloud_act,
            basis=f"the CNAME chain {path} ends in *.{entry.suffix}: {entry.provider} "
            f"({suffixes.label})",
            sources=(suffixes.label, operators.label, *entry.sources, *op.sources),
        )
    return None
