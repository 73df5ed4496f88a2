"""The jurisdiction state of an application, and the observations that update it.

A **state key** is (application, vantage set, address family). The vantage set of a result
is the country of its vantage point (``nl`` for the Dutch RIPE Atlas probes of the default
``nl`` vantage set; reference probes elsewhere get keys of their own, so a US reference
probe never hides or fakes a change seen from the Netherlands).

One traceroute gives one :class:`Observation`: the jurisdictions of every hop on every
branch it saw, written as *atoms* — ``physical:US`` (a hop is physically in the US: a source
says so and RTT physics allows it), ``legal:US`` (a hop's operator, or its parent company,
is under US law), ``verdict:routed_via_us`` (the path's class, see
:mod:`consumers.verdicts`) — each with the evidence that produced it. The state of a key is
the set of atoms over all its current branches. Pure functions, no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from consumers.enrich.geo import is_public
from consumers.enrich.hops import HopVerdict
from consumers.enrich.window import PathResult
from consumers.verdicts import EU_EEA, SEVERITY, UNKNOWN
from schemas.alerts import Evidence, JurisdictionState, ResultRef

_COUNTRY = re.compile(r"^[A-Z]{2}$")
EU_BLOC = "EU"


@dataclass(frozen=True, slots=True, order=True)
class StateKey:
    application: str
    vantage_set: str
    address_family: int

    @property
    def text(self) -> str:
        return f"{self.application}|{self.vantage_set}|v{self.address_family}"

    @classmethod
    def parse(cls, text: str) -> StateKey:
        application, vantage_set, family = text.rsplit("|", 2)
        return cls(application, vantage_set, int(family.lstrip("v")))


@dataclass(frozen=True, slots=True)
class ApplicationInfo:
    name: str
    municipalities: tuple[str, ...] = ()
    criticality: str = "normal"


@dataclass(slots=True)
class Observation:
    """What one traceroute result says about one state key."""

    key: StateKey
    application: ApplicationInfo
    series: str  # vantage point | measurement | target (name, else address)
    vantage_point: str
    flow_id: int | None
    timestamp: float  # seconds since the epoch (event time)
    atoms: frozenset[str]
    evidence: dict[str, Evidence] = field(default_factory=dict)


def jurisdiction(country: str, granularity: str) -> str:
    """``NL`` -> ``EU`` in bloc mode; ``""`` for anything that is not a country code."""
    country = (country or "").upper()
    if not _COUNTRY.match(country) or country in ("ZZ", "XX"):
        return ""
    if granularity == "bloc" and country in EU_EEA:
        return EU_BLOC
    return country


def summarize(atoms: Iterable[str]) -> JurisdictionState:
    """before/after of an alert: the atoms grouped by axis, the most serious verdict."""
    physical: set[str] = set()
    legal: set[str] = set()
    verdicts: set[str] = set()
    for atom in atoms:
        axis, _, value = atom.partition(":")
        {"physical": physical, "legal": legal, "verdict": verdicts}.get(axis, set()).add(value)
    ordered = sorted(verdicts, key=lambda v: (-SEVERITY.get(v, 0), v))
    return JurisdictionState(physical=sorted(physical), legal=sorted(legal),
                             verdict=ordered[0] if ordered else UNKNOWN, verdicts=ordered)


def _sources(hop: HopVerdict) -> list[str]:
    return [f"{c.source} ({c.dataset_version}): {c.country or '?'}"
            for c in hop.physical.sources]


def _evidence(atom: str, ref: ResultRef, vantage: str, hop: HopVerdict | None,
              reason: str) -> Evidence:
    if hop is None:
        return Evidence(change=atom, result=ref, vantage_point=vantage, reason=reason)
    bound = hop.physical.bound
    return Evidence(
        change=atom, result=ref, vantage_point=vantage, hop=hop.record.hop,
        address=hop.record.address, rtt_ms=hop.record.rtt_ms,
        bound_km=round(bound.bound_km, 1) if bound else None,
        us_distance_km=round(bound.us_distance_km, 1) if bound else None,
        physical_country=hop.physical.country, physical_confidence=hop.physical.confidence,
        legal_operator=hop.legal.operator, legal_country=hop.legal.country,
        sources=_sources(hop), reason=reason or hop.physical.note,
    )


def path_atoms(result: PathResult, granularity: str, *, transit_legal: bool = True,
               ref: ResultRef) -> tuple[frozenset[str], dict[str, Evidence]]:
    """The jurisdiction atoms of one forward path, with one piece of evidence per atom."""
    vantage = result.vantage.key if result.vantage else f"atlas:{result.path.probe_id}"
    atoms: dict[str, Evidence] = {}
    destination = result.verdict.destination
    hops = [h for h in result.hops if not h.record.is_destination] + [destination]
    for hop in hops:
        if not is_public(hop.record.address):
            continue
        place = jurisdiction(hop.physical.country, granularity)
        if place:
            atom = f"physical:{place}"
            if atom not in atoms:
                what = "destination" if hop is destination else f"hop {hop.record.hop}"
                atoms[atom] = _evidence(atom, ref, vantage, hop, f"{what} {hop.record.address} "
                                        f"is physically in {hop.physical.country}")
        if hop is destination or transit_legal:
            law = jurisdiction(hop.legal.country, granularity)
            if law:
                atom = f"legal:{law}"
                if atom not in atoms:
                    atoms[atom] = _evidence(
                        atom, ref, vantage, hop, f"{hop.record.address} is operated by "
                        f"{hop.legal.operator or '?'} ({hop.legal.parent or hop.legal.operator}"
                        f", {hop.legal.country})")
    verdict = result.verdict
    if verdict.verdict != UNKNOWN:
        atom = f"verdict:{verdict.verdict}"
        key_hop = verdict.us_hops[0] if verdict.us_hops else destination
        atoms[atom] = _evidence(atom, ref, vantage, key_hop, "; ".join(verdict.reasons))
    return frozenset(atoms), atoms


def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


class Applications:
    """Which applications a measured target belongs to (hostname or literal address)."""

    def __init__(self, applications: Iterable[tuple[ApplicationInfo, Sequence[str]]] = (),
                 *, unmapped_targets: bool = True) -> None:
        self.by_target: dict[str, list[ApplicationInfo]] = {}
        self.unmapped_targets = unmapped_targets
        for info, hostnames in applications:
            for hostname in hostnames:
                self.by_target.setdefault(_norm(hostname), []).append(info)

    def __len__(self) -> int:
        return len(self.by_target)

    def lookup(self, destination_name: str, destination_address: str) -> list[ApplicationInfo]:
        found = self.by_target.get(_norm(destination_name)) or self.by_target.get(
            _norm(destination_address))
        if found:
            return found
        if not self.unmapped_targets:
            return []
        return [ApplicationInfo(_norm(destination_name) or destination_address)]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]], *,
                  unmapped_targets: bool = True) -> Applications:
        """From ``applications`` table rows (application, municipalities, hostnames, ...)."""
        items = []
        for row in rows:
            municipalities = row.get("municipalities") or ()
            hostnames = row.get("hostnames") or ()
            items.append((ApplicationInfo(
                str(row["application"]),
                tuple(str(m) for m in municipalities)  # type: ignore[attr-defined]
                , str(row.get("criticality") or "normal")),
                [str(h) for h in hostnames]))  # type: ignore[attr-defined]
        return cls(items, unmapped_targets=unmapped_targets)


def vantage_set_of(result: PathResult) -> str:
    country = result.vantage.country if result.vantage else ""
    return country.lower() if country else "unplaced"


def observations(results: Iterable[PathResult], applications: Applications,
                 flow_ids: Mapping[tuple[str, int, int, int, str], int | None],
                 granularity: str, *, transit_legal: bool = True) -> list[Observation]:
    """One observation per (path, application it belongs to)."""
    out: list[Observation] = []
    for result in results:
        path = result.path
        natural = (path.source, path.measurement_id, path.probe_id, path.timestamp,
                   path.destination_address)
        flow = flow_ids.get(natural)
        ref = ResultRef(source=path.source, measurement_id=path.measurement_id,
                        probe_id=path.probe_id,
                        timestamp=dt.datetime.fromtimestamp(path.timestamp, dt.UTC),
                        destination_address=path.destination_address, paris_id=flow)
        atoms, evidence = path_atoms(result, granularity, transit_legal=transit_legal, ref=ref)
        family = 6 if ":" in path.destination_address else 4
        vantage = result.vantage.key if result.vantage else f"atlas:{path.probe_id}"
        for info in applications.lookup(path.destination_name, path.destination_address):
            key = StateKey(info.name, vantage_set_of(result), family)
            out.append(Observation(
                key, info, f"{vantage}|{path.measurement_id}|"
                f"{_norm(path.destination_name) or path.destination_address}",
                vantage, flow, float(path.timestamp), atoms, evidence))
    out.sort(key=lambda o: o.timestamp)
    return out
