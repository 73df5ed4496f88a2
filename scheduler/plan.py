"""Planning: inventory -> wanted RIPE Atlas measurements -> the API requests that get there.

Pure functions, no I/O: :func:`wanted_measurements` expands the inventory, :func:`make_plan`
applies the credit budget and the concurrent-measurement limit, reconciles with the
measurements that already exist (found by tag) and packs what must be created into as few
create requests as sensible (one request per vantage set, address family and chunk of
``definitions_per_request`` definitions: definitions in one request share their probes).

Every measurement carries two tags: the deployment tag (``grenswacht``) and a key tag
``gw-<10 hex>`` that hashes everything that defines it (type, target, family, protocol,
interval, probe selection). Reconciliation matches on the key tag: same key = keep, a key
that is no longer wanted = stop, a wanted key that does not run = create.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from scheduler.inventory import AtlasVantageSet, Criticality, Inventory
from scheduler.settings import AtlasSettings

RUNNING_STATUSES = (0, 1, 2)  # Specified, Scheduled, Ongoing
MEASUREMENTS_PATH = "/api/v2/measurements/"



def identity_key(prefix: str, identity: dict[str, Any]) -> str:
    """A stable key of what makes a measurement itself: ``prefix-`` and 10 hex digits of
    the sha256 of its identity (JSON, keys sorted)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{prefix}-{digest[:10]}"

@dataclass(frozen=True, slots=True)
class MeasurementSpec:
    kind: Literal["traceroute", "dns"]
    target: str
    address_family: int
    variant: str  # traceroute protocol (ICMP/TCP/UDP) or DNS query type (A/AAAA)
    vantage_set: str
    interval_s: int | None  # None = one-off
    probes: int
    sources: tuple[tuple[tuple[str, Any], ...], ...]
    applications: tuple[str, ...]
    criticality: Criticality
    port: int | None = None
    paris: int = 16

    @property
    def key(self) -> str:
        identity = {
            "kind": self.kind,
            "target": self.target,
            "af": self.address_family,
            "variant": self.variant,
            "port": self.port,
            "interval": self.interval_s,
            "paris": self.paris,
            "sources": [dict(s) for s in self.sources],
        }
        return identity_key("gw", identity)

    @property
    def label(self) -> str:
        what = f"{self.variant} {self.kind}" if self.kind == "traceroute" else f"DNS {self.variant}"
        return f"{what} v{self.address_family} {self.target} from {self.vantage_set}"

    def source_dicts(self) -> list[dict[str, Any]]:
        return [_thaw(s) for s in self.sources]

    def definition(self, tag: str) -> dict[str, Any]:
        """The Atlas definition (arguments of cousteau's ``Traceroute``/``Dns``)."""
        out: dict[str, Any] = {
            "af": self.address_family,
            "description": f"grenswacht: {self.label}",
            "tags": [tag, self.key],
        }
        if self.kind == "traceroute":
            out.update(
                target=self.target, protocol=self.variant, paris=self.paris, resolve_on_probe=True
            )
            if self.port is not None:
                out["port"] = self.port
        else:
            out.update(
                query_class="IN",
                query_type=self.variant,
                query_argument=self.target,
                use_probe_resolver=True,
                set_rd_bit=True,
                protocol="UDP",
                resolve_on_probe=True,
            )
        if self.interval_s is not None:
            out["interval"] = self.interval_s
        return out

    def credits_per_result(self, settings: AtlasSettings) -> int:
        base = settings.traceroute_credits if self.kind == "traceroute" else settings.dns_credits
        return base * (settings.oneoff_multiplier if self.interval_s is None else 1)

    def credits_per_day(self, settings: AtlasSettings) -> int:
        """Credits per day of a periodic measurement; the whole cost of a one-off."""
        results = self.probes if self.interval_s is None else self.probes * 86400 // self.interval_s
        return results * self.credits_per_result(settings)


def _freeze(sources: list[dict[str, Any]]) -> tuple[tuple[tuple[str, Any], ...], ...]:
    def freeze(value: Any) -> Any:
        if isinstance(value, dict):
            return tuple(sorted((k, freeze(v)) for k, v in value.items()))
        if isinstance(value, list):
            return tuple(freeze(v) for v in value)
        return value

    return tuple(tuple(sorted((k, freeze(v)) for k, v in s.items())) for s in sources)


def _thaw(value: Any) -> Any:
    if (
        isinstance(value, tuple)
        and value
        and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value)
    ):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def wanted_measurements(inventory: Inventory) -> list[MeasurementSpec]:
    """Every measurement the inventory asks for, one per unique target and kind, most
    critical first. A hostname used by several applications is measured once."""
    m = inventory.measurements
    by_target: dict[tuple[str, str], list[tuple[str, Criticality]]] = {}
    all_sets = [v.name for v in inventory.vantage_sets if isinstance(v, AtlasVantageSet)]
    for app in (a for a in inventory.applications if a.measure):
        for set_name in app.vantage_sets or all_sets:
            if not isinstance(inventory.vantage_set(set_name), AtlasVantageSet):
                continue
            for host in app.hostnames:
                by_target.setdefault((set_name, host), []).append((app.name, app.criticality))
    specs: list[MeasurementSpec] = []
    for (set_name, host), users in sorted(by_target.items()):
        vset = inventory.vantage_set(set_name)
        if not isinstance(vset, AtlasVantageSet):
            continue
        criticality = min((c for _, c in users), key=lambda c: c.rank)
        apps = tuple(sorted({name for name, _ in users}))
        reference = vset.purpose == "reference"
        interval = (
            None
            if m.oneoff
            else (m.reference_interval_s if reference else m.interval_s[criticality])
        )
        protocols = ["ICMP"] if reference else m.traceroute_protocols
        for af in m.address_families:
            base = MeasurementSpec(
                kind="traceroute",
                target=host,
                address_family=af,
                variant="",
                vantage_set=set_name,
                interval_s=interval,
                probes=vset.probe_count(),
                sources=_freeze(vset.sources(af)),
                applications=apps,
                criticality=criticality,
                paris=m.paris,
            )
            for proto in protocols:
                port = m.tcp_port if proto == "TCP" else None
                specs.append(replace(base, variant=proto, port=port))
            if af == 4 and not reference:
                for qtype in m.dns_query_types:
                    specs.append(replace(base, kind="dns", variant=qtype))
    reference_last = {
        s.name: s.purpose == "reference"
        for s in inventory.vantage_sets
        if isinstance(s, AtlasVantageSet)
    }
    specs.sort(
        key=lambda s: (
            reference_last[s.vantage_set],
            s.criticality.rank,
            s.target,
            s.kind,
            s.address_family,
            s.variant,
        )
    )
    return specs


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One request as it would go on the wire (path relative to the API base URL)."""

    method: Literal["POST", "DELETE", "GET"]
    path: str
    body: Any = None
    specs: tuple[MeasurementSpec, ...] = ()
    is_oneoff: bool = False


@dataclass(slots=True)
class Plan:
    wanted: list[MeasurementSpec]
    selected: list[MeasurementSpec] = field(default_factory=list)
    skipped: list[tuple[MeasurementSpec, str]] = field(default_factory=list)
    keep: dict[int, MeasurementSpec] = field(default_factory=dict)
    create: list[MeasurementSpec] = field(default_factory=list)
    stop: list[tuple[int, str]] = field(default_factory=list)
    requests: list[ApiRequest] = field(default_factory=list)

    def credits_per_day(self, settings: AtlasSettings) -> int:
        return sum(s.credits_per_day(settings) for s in self.selected if s.interval_s is not None)

    def oneoff_credits(self, settings: AtlasSettings) -> int:
        return sum(s.credits_per_day(settings) for s in self.selected if s.interval_s is None)


def make_plan(
    inventory: Inventory,
    settings: AtlasSettings,
    existing: Sequence[dict[str, Any]] = (),
    build_body: Any = None,
) -> Plan:
    """Decide what to keep, create and stop. ``existing`` are measurement objects from the
    API (``id``, ``tags``, ``status``) carrying the deployment tag; ``build_body`` turns
    ``(definitions, sources, is_oneoff)`` into the exact POST body (cousteau's, from
    :func:`scheduler.atlas.create_body`; a plain dict when omitted)."""
    plan = Plan(wanted=wanted_measurements(inventory))
    running: dict[str, list[int]] = {}
    for msm in existing:
        status = msm.get("status") or {}
        status_id = status.get("id") if isinstance(status, dict) else status
        if status_id not in RUNNING_STATUSES:
            continue
        tags = [str(t) for t in msm.get("tags") or ()]
        key = next((t for t in tags if t.startswith("gw-")), "")
        running.setdefault(key, []).append(int(msm["id"]))
    budget = settings.daily_credit_budget
    slots = settings.max_concurrent_measurements
    spent = 0
    for spec in plan.wanted:
        cost = spec.credits_per_day(settings)
        if spent + cost > budget:
            plan.skipped.append((spec, f"over the daily credit budget ({cost} credits)"))
            continue
        if len(plan.selected) >= slots:
            plan.skipped.append((spec, f"over the limit of {slots} concurrent measurements"))
            continue
        spent += cost
        plan.selected.append(spec)
        ids = sorted(running.pop(spec.key, []))
        if ids:
            plan.keep[ids[0]] = spec
            plan.stop.extend((i, f"duplicate of {ids[0]}") for i in ids[1:])
        else:
            plan.create.append(spec)
    for ids in running.values():
        plan.stop.extend((i, "no longer wanted") for i in sorted(ids))
    plan.stop.sort()
    plan.requests = [ApiRequest("DELETE", f"{MEASUREMENTS_PATH}{i}") for i, _ in plan.stop]
    plan.requests.extend(pack(plan.create, settings, build_body))
    return plan


def pack(
    specs: Iterable[MeasurementSpec], settings: AtlasSettings, build_body: Any = None
) -> list[ApiRequest]:
    """Group definitions that share a probe selection into create requests."""
    groups: dict[tuple[Any, bool], list[MeasurementSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.sources, spec.interval_s is None), []).append(spec)
    out: list[ApiRequest] = []
    size = settings.definitions_per_request
    for (sources, oneoff), members in groups.items():
        for start in range(0, len(members), size):
            chunk = tuple(members[start : start + size])
            definitions = [(s.kind, s.definition(settings.tag)) for s in chunk]
            source_list = [_thaw(s) for s in sources]
            if build_body is not None:
                body = build_body(definitions, source_list, oneoff)
            else:
                body = {
                    "definitions": [dict(d, type=k) for k, d in definitions],
                    "probes": source_list,
                    "is_oneoff": oneoff,
                }
            out.append(ApiRequest("POST", MEASUREMENTS_PATH, body, chunk, oneoff))
    return out
