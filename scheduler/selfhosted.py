"""Self-hosted vantage sets: inventory -> probe task series -> the tasks due now (pure).

A *series* is one repeated measurement of one target from one self-hosted vantage point:

* a **Paris traceroute** per protocol (``[measurements.self_hosted] traceroute_protocols``,
  default UDP) and address family, every ``interval_s[criticality]``; the flow id
  (``paris_id``) rotates over ``measurements.paris`` values, one per round, as RIPE Atlas
  rotates it over its ``paris`` variations (``paris = 0``: always flow 0);
* an **MDA** run per address family at its own cadence (``mda_interval_s``);
* **DNS** A/AAAA (``dns_query_types``) of each hostname (an IP literal has nothing to
  resolve), asked of the vantage point's own resolvers.

A hostname that is an IP literal is measured in its own family only. Every series has a
stable key (a hash of what defines it) and a stable ``msm_id`` in the self-hosted range
(:func:`schemas.tasks.series_measurement_id`). Time is cut into rounds of the series'
interval, shifted by a per-series phase so that series do not all fire in the same second.
A series is due when its current round has not been published yet; the task id
``<key>-<round>`` is the same for the same round whoever computes it, so a re-publish after
a crash is recognisable; ``not_after`` (the end of the round) lets an agent that was down
skip the backlog instead of running it late. Task options stay within the agent's
defaults: only MDA's confidence and DNS's query types are set; hop limits, timeouts and
packet counts are the vantage point's own settings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from scheduler.inventory import Criticality, Inventory, SelfHostedVantageSet
from scheduler.plan import identity_key
from schemas.tasks import ProbeTask, series_measurement_id


@dataclass(frozen=True, slots=True)
class TaskSeries:
    kind: Literal["traceroute", "mda", "dns"]
    target: str
    address_family: int
    protocol: Literal["udp", "icmp", "tcp"]
    vantage_point: str
    vantage_set: str
    interval_s: int
    applications: tuple[str, ...]
    criticality: Criticality
    paris: int = 0
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        identity = {
            "kind": self.kind,
            "target": self.target,
            "af": self.address_family,
            "protocol": self.protocol,
            "vp": self.vantage_point,
            "interval": self.interval_s,
            "paris": self.paris,
            "options": [list(o) for o in self.options],
        }
        return identity_key("gwp", identity)

    @property
    def msm_id(self) -> int:
        return series_measurement_id(self.key)

    @property
    def label(self) -> str:
        if self.kind == "dns":
            what = f"DNS {'/'.join(dict(self.options).get('query_types', []))}"
        elif self.kind == "mda":
            what = f"{self.protocol.upper()} MDA v{self.address_family}"
        else:
            what = f"{self.protocol.upper()} traceroute v{self.address_family}"
        return f"{what} {self.target} from {self.vantage_point}"

    def phase_s(self) -> int:
        """Offset of this series' rounds within its interval (spreads the load)."""
        return int(self.key[4:], 16) % self.interval_s

    def round_at(self, now: float) -> int:
        return int((now - self.phase_s()) // self.interval_s)

    def task(self, round_number: int) -> ProbeTask:
        paris_id = round_number % self.paris if self.kind == "traceroute" and self.paris else 0
        return ProbeTask(
            task_id=f"{self.key}-{round_number}",
            kind=self.kind,
            target=self.target,
            protocol=self.protocol,
            af=4 if self.address_family == 4 else 6,
            paris_id=paris_id,
            vantage_point=self.vantage_point,
            msm_id=self.msm_id,
            options={k: list(v) if isinstance(v, tuple) else v for k, v in self.options},
            not_after=float((round_number + 1) * self.interval_s + self.phase_s()),
        )


def _literal_family(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def wanted_task_series(inventory: Inventory) -> list[TaskSeries]:
    """Every task series the inventory asks of its self-hosted vantage sets, most critical
    first. A hostname used by several applications is measured once per vantage point, at
    the highest criticality (the shortest interval)."""
    m = inventory.measurements
    sh = m.self_hosted
    all_sets = [v.name for v in inventory.vantage_sets]
    users: dict[tuple[str, str, str], list[tuple[str, Criticality]]] = {}
    for app in (a for a in inventory.applications if a.measure):
        for set_name in app.vantage_sets or all_sets:
            vset = inventory.vantage_set(set_name)
            if not isinstance(vset, SelfHostedVantageSet):
                continue
            for vp in vset.probes:
                for host in app.hostnames:
                    users.setdefault((vp, host, set_name), []).append((app.name, app.criticality))
    best: dict[tuple[str, str], tuple[str, list[tuple[str, Criticality]]]] = {}
    for (vp, host, set_name), found in sorted(users.items()):
        _, seen = best.setdefault((vp, host), (set_name, []))
        seen.extend(found)
    series: list[TaskSeries] = []
    for (vp, host), (set_name, found) in sorted(best.items()):
        criticality = min((c for _, c in found), key=lambda c: c.rank)
        apps = tuple(sorted({name for name, _ in found}))
        interval = m.interval_s[criticality]
        literal = _literal_family(host)
        families = [literal] if literal else list(m.address_families)
        common: dict[str, Any] = {
            "target": host, "vantage_point": vp, "vantage_set": set_name,
            "applications": apps, "criticality": criticality,
        }
        for af in families:
            for protocol in sh.traceroute_protocols:
                series.append(TaskSeries("traceroute", address_family=af, protocol=protocol,
                                         interval_s=interval, paris=m.paris, **common))
            if sh.mda:
                series.append(TaskSeries(
                    "mda", address_family=af, protocol="udp", interval_s=sh.mda_interval_s,
                    options=(("confidence", sh.mda_confidence),), **common))
        if sh.dns and literal is None and m.dns_query_types:
            series.append(TaskSeries(
                "dns", address_family=4, protocol="udp", interval_s=interval,
                options=(("query_types", tuple(m.dns_query_types)),), **common))
    series.sort(key=lambda s: (s.criticality.rank, s.vantage_point, s.target, s.kind,
                               s.address_family, s.protocol))
    return series


@dataclass(slots=True)
class DueTasks:
    tasks: list[tuple[TaskSeries, ProbeTask]] = field(default_factory=list)
    rounds: dict[str, int] = field(default_factory=dict)  # the state after publishing


def due_tasks(series: Iterable[TaskSeries], published: Mapping[str, int], now: float) -> DueTasks:
    """The tasks due at ``now``: one per series whose current round was not published.
    ``published`` maps series key -> last round published; the returned ``rounds`` is the
    state to keep once the tasks are on the bus (series no longer wanted are dropped)."""
    out = DueTasks()
    for one in series:
        current = one.round_at(now)
        last = published.get(one.key)
        out.rounds[one.key] = current
        if last is None or last < current:
            out.tasks.append((one, one.task(current)))
        elif last > current:  # the clock went back: keep the later mark
            out.rounds[one.key] = last
    return out
