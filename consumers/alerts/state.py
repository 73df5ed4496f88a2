"""The jurisdiction state of an application, and the observations that update it.

A **state key** is (application, vantage set, address family). The vantage set of a path is
its home set (``nl`` for RIPE Atlas probes in the Netherlands, ``self`` for self-hosted
vantage points; ``consumers.home``); with ``alerts.home_only = false`` reference probes
elsewhere are watched too, under keys of their own (their country), so a US reference probe
never hides or fakes a change seen from the Netherlands.

One path verdict (a traceroute, or an MDA result over all its branches), as the analysis
published it on the verdicts topic (:class:`schemas.verdicts.PathMessage`), gives one
:class:`Observation`: the jurisdictions of every located hop written as *atoms* —
``physical:US`` (a hop is physically in the US: a source says so and RTT physics allows
it), ``legal:US`` (a hop's operator, or its parent company, is under US law),
``verdict:routed_via_us`` (the path's class, see :mod:`consumers.verdicts`) — each with
the evidence that produced it. Nothing is derived again: the atoms are read off the
published hop verdicts. The state of a key is the set of atoms over all its current
branches. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from consumers.verdicts import EU_EEA, SEVERITY, UNKNOWN, normalise_class
from schemas.alerts import Evidence, JurisdictionState, ResultRef
from schemas.verdicts import HopMessage, PathMessage

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


def _evidence(atom: str, ref: ResultRef, vantage: str, hop: HopMessage | None,
              reason: str) -> Evidence:
    if hop is None:
        return Evidence(change=atom, result=ref, vantage_point=vantage, reason=reason)
    return Evidence(
        change=atom, result=ref, vantage_point=vantage, hop=hop.hop, address=hop.address,
        rtt_ms=hop.rtt_ms, bound_km=hop.bound_km, us_distance_km=hop.us_distance_km,
        physical_country=hop.physical_country, physical_confidence=hop.physical_confidence,
        legal_operator=hop.legal_operator, legal_country=hop.legal_country,
        sources=list(hop.sources), reason=reason or hop.note,
    )


def path_atoms(path: PathMessage, granularity: str, *, transit_legal: bool = True,
               ref: ResultRef) -> tuple[frozenset[str], dict[str, Evidence]]:
    """The jurisdiction atoms of one forward path, with one piece of evidence per atom."""
    atoms: dict[str, Evidence] = {}
    for hop in path.hops:
        place = jurisdiction(hop.physical_country, granularity)
        what = "destination" if hop.is_destination else f"hop {hop.hop}"
        if place:
            atom = f"physical:{place}"
            if atom not in atoms:
                atoms[atom] = _evidence(atom, ref, path.vantage_key, hop,
                                        f"{what} {hop.address} is physically in "
                                        f"{hop.physical_country}")
        if hop.is_destination or transit_legal:
            law = jurisdiction(hop.legal_country, granularity)
            if law:
                atom = f"legal:{law}"
                if atom not in atoms:
                    atoms[atom] = _evidence(
                        atom, ref, path.vantage_key, hop, f"{hop.address} is operated by "
                        f"{hop.legal_operator or '?'} ({hop.legal_parent or hop.legal_operator}"
                        f", {hop.legal_country})")
    verdict = normalise_class(path.verdict)
    if verdict != UNKNOWN:
        atom = f"verdict:{verdict}"
        us = [h for h in path.hops if h.hop in path.us_hops and not h.is_destination]
        key_hop = us[0] if us else (path.hops[-1] if path.hops else None)
        atoms[atom] = _evidence(atom, ref, path.vantage_key, key_hop, "; ".join(path.reasons))
    return frozenset(atoms), atoms


def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


class Applications:
    """Which applications a measured target belongs to (hostname or literal address)."""

    def __init__(self, applications: Iterable[tuple[ApplicationInfo, Sequence[str]]] = (),
                 *, unmapped_targets: bool = True) -> None:
        self.by_target: dict[str, list[ApplicationInfo]] = {}
        self.by_name: dict[str, ApplicationInfo] = {}
        self.unmapped_targets = unmapped_targets
        for info, hostnames in applications:
            self.by_name[info.name] = info
            for hostname in hostnames:
                self.by_target.setdefault(_norm(hostname), []).append(info)

    def __len__(self) -> int:
        return len(self.by_target)

    def info(self, name: str) -> ApplicationInfo:
        """Municipalities and criticality of an application (defaults when unknown)."""
        return self.by_name.get(name) or ApplicationInfo(name)

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


def vantage_set_of(path: PathMessage) -> str:
    if path.home_set:
        return path.home_set
    return path.vantage_country.lower() if path.vantage_country else "unplaced"


def _targets(path: PathMessage, applications: Applications) -> list[ApplicationInfo]:
    """The applications of a path: as the analysis mapped it (per vantage point DNS), with
    municipalities and criticality from the inventory; else the target itself."""
    if path.applications:
        return [applications.info(name) for name in path.applications]
    return applications.lookup(path.destination_name, path.destination_address)


def observations(paths: Iterable[PathMessage], applications: Applications,
                 granularity: str, *, transit_legal: bool = True,
                 home_only: bool = True) -> list[Observation]:
    """One observation per (path, application it belongs to)."""
    out: list[Observation] = []
    for path in paths:
        if home_only and not path.home_set:
            continue
        ref = ResultRef(source=path.source, measurement_id=path.measurement_id,
                        probe_id=path.probe_id, timestamp=path.timestamp,
                        destination_address=path.destination_address, paris_id=path.flow_id)
        atoms, evidence = path_atoms(path, granularity, transit_legal=transit_legal, ref=ref)
        key_set = vantage_set_of(path)
        for info in _targets(path, applications):
            key = StateKey(info.name, key_set, path.address_family)
            out.append(Observation(
                key, info, f"{path.vantage_key}|{path.kind}|{path.measurement_id}|"
                f"{path.target}", path.vantage_key, path.flow_id,
                path.timestamp.timestamp(), atoms, evidence))
    out.sort(key=lambda o: o.timestamp)
    return out
