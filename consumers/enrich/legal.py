"""The legal axis: address -> origin AS -> operator -> parent company -> country.

The curated, versioned table ``data/operators.json`` (a source for every entry) names the
operators that matter for Dutch municipalities: the US clouds, CDNs, SaaS vendors and
transit carriers, and the main European ones. A parent company in the US means CLOUD Act
exposure, also for a European subsidiary (Akamai International B.V., Equinix (Netherlands)
B.V., Amazon Data Services Ireland): those count as US-legal. An AS the table does not
know falls back to the country its network is registered in, with low confidence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from consumers.enrich.geo import GeoClaim

CONFIDENCE_ORDER = {"high": 3, "medium": 2, "low": 1, "none": 0}


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    operator: str
    parent: str
    parent_country: str
    category: str
    asns: tuple[int, ...]
    as_names: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def cloud_act(self) -> bool:
        return self.parent_country == "US"


class OperatorTable:
    """The operators table, indexed by AS number, AS name and id."""

    def __init__(self, dataset: str, version: str, operators: tuple[Operator, ...]) -> None:
        self.dataset = dataset
        self.version = version
        self.operators = operators
        self._by_asn: dict[int, Operator] = {}
        self._by_name: dict[str, Operator] = {}
        self._by_id: dict[str, Operator] = {}
        for op in operators:
            self._by_id[op.id] = op
            for asn in op.asns:
                self._by_asn[asn] = op
            for name in op.as_names:
                self._by_name[name.casefold()] = op

    def by_asn(self, asn: int) -> Operator | None:
        return self._by_asn.get(asn)

    def by_as_name(self, name: str) -> Operator | None:
        return self._by_name.get(name.casefold())

    def by_id(self, operator_id: str) -> Operator | None:
        return self._by_id.get(operator_id)

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.version}"


def parse_operators(document: dict[str, Any]) -> OperatorTable:
    operators = tuple(
        Operator(
            id=str(item["id"]), operator=str(item["operator"]), parent=str(item["parent"]),
            parent_country=str(item["parent_country"]).upper(), category=str(item["category"]),
            asns=tuple(int(a) for a in item.get("asns", [])),
            as_names=tuple(str(n) for n in item.get("as_names", [])),
            sources=tuple(str(s) for s in item["sources"]),
        )
        for item in document["operators"]
    )
    return OperatorTable(str(document["dataset"]), str(document["version"]), operators)


@cache
def default_operators() -> OperatorTable:
    text = (resources.files("consumers.enrich") / "data" / "operators.json").read_text(
        encoding="utf-8"
    )
    return parse_operators(json.loads(text))


def load_operators(path: Path | None) -> OperatorTable:
    """The table at ``path`` (a user's own, same format) or the bundled default."""
    if path is None:
        return default_operators()
    return parse_operators(json.loads(Path(path).read_text(encoding="utf-8")))


# Cloud range files name a provider; these are the table ids that provider maps to.
CLOUD_PROVIDER_OPERATOR = {
    "Amazon Web Services": "amazon",
    "Microsoft Azure": "microsoft",
    "Google Cloud": "google",
}


@dataclass(frozen=True, slots=True)
class LegalVerdict:
    """Whose law applies to the operator of an address."""

    operator: str = ""
    parent: str = ""
    country: str = ""  # the country whose law governs the parent ("" unknown)
    confidence: str = "none"  # high | medium | low | none
    cloud_act: bool = False
    asn: int | None = None
    as_name: str = ""
    basis: str = ""  # how it was decided, in words
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        # the fields by hand, not dataclasses.asdict (a deep copy: the hot path of writing
        # hop verdicts, measured in bench/ingest.py); the same dict
        data = {name: getattr(self, name) for name in _VERDICT_FIELDS}
        data["sources"] = list(self.sources)
        return data


_VERDICT_FIELDS = tuple(f.name for f in fields(LegalVerdict))


def _from_operator(op: Operator, claim: GeoClaim | None, basis: str, confidence: str,
                   table: OperatorTable) -> LegalVerdict:
    return LegalVerdict(
        operator=op.operator, parent=op.parent, country=op.parent_country,
        confidence=confidence, cloud_act=op.cloud_act,
        asn=claim.asn if claim else None, as_name=claim.as_name if claim else "",
        basis=basis, sources=(table.label, *op.sources),
    )


def legal_verdict(claims: Sequence[GeoClaim], table: OperatorTable) -> LegalVerdict:
    """Decide the legal axis for one address from the claims of every geo source."""
    for claim in claims:
        op_id = CLOUD_PROVIDER_OPERATOR.get(claim.cloud_provider)
        op = table.by_id(op_id) if op_id else None
        if op is not None:
            return _from_operator(
                op, claim, f"address is in {claim.cloud_provider}'s published IP ranges "
                f"({claim.extra.get('prefix', '')}, {claim.source} {claim.dataset_version})",
                "high", table)
    for claim in claims:
        if claim.asn is not None:
            op = table.by_asn(claim.asn)
            if op is not None:
                return _from_operator(
                    op, claim, f"origin AS{claim.asn} ({claim.as_name or '?'}) per "
                    f"{claim.source}; AS{claim.asn} is {op.operator}'s", "high", table)
    for claim in claims:
        if claim.as_name:
            op = table.by_as_name(claim.as_name)
            if op is not None:
                return _from_operator(
                    op, claim, f"origin AS named {claim.as_name!r} per {claim.source} "
                    f"({claim.dataset_version}); that name is {op.operator}'s", "medium", table)
    for claim in claims:
        country = claim.registered_country or claim.country
        if country:
            what = "registered" if claim.registered_country else "located (registration unknown)"
            name = claim.as_name or (f"AS{claim.asn}" if claim.asn else "unknown operator")
            return LegalVerdict(
                operator=name, parent="", country=country, confidence="low",
                cloud_act=country == "US", asn=claim.asn, as_name=claim.as_name,
                basis=f"operator not in {table.label}; network {what} in {country} per "
                f"{claim.source} ({claim.dataset_version})",
                sources=(f"{claim.source} {claim.dataset_version}",),
            )
    return LegalVerdict(basis="no source knows this address")
