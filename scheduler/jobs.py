"""The scheduler's jobs as plain functions (APScheduler only calls them, in ``app.py``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scheduler.atlas import create_body
from scheduler.collector import Collector, StateFile
from scheduler.inventory import load_inventory
from scheduler.jsonstate import JsonState
from scheduler.metrics import CREDITS_PLANNED, CREDITS_SPENT, PROBE_TASKS_PUBLISHED
from scheduler.plan import Plan, make_plan
from scheduler.selfhosted import TaskSeries, due_tasks, wanted_task_series
from scheduler.settings import AtlasSettings
from schemas.bus import Bus
from schemas.errors import ConfigError
from schemas.topics import HEADER_ORIGIN, HEADER_SOURCE, PROBE_TASKS

LOG = logging.getLogger(__name__)


class MeasurementAPI(Protocol):
    def my_measurements(self, tag: str) -> list[dict[str, Any]]: ...

    def create(self, definitions: Any, sources: Any, is_oneoff: bool) -> list[int]: ...

    def stop(self, measurement_id: int) -> None: ...


@dataclass(slots=True)
class ApplyReport:
    created: dict[int, str] = field(default_factory=dict)
    stopped: list[int] = field(default_factory=list)
    kept: dict[int, str] = field(default_factory=dict)


def inventory_path(settings: AtlasSettings) -> Path:
    if settings.inventory is None:
        raise ConfigError("no inventory: set atlas.inventory (apps.toml or apps.csv)")
    return settings.inventory


def plan_for(settings: AtlasSettings, existing: list[dict[str, Any]] | None = None) -> Plan:
    """Plan from the configured inventory; ``existing`` = measurements found by tag."""
    inventory = load_inventory(inventory_path(settings))
    return make_plan(inventory, settings, existing or [], build_body=create_body)


def apply_plan(plan: Plan, client: MeasurementAPI, settings: AtlasSettings) -> ApplyReport:
    """Send the plan: stops first (they free concurrent slots), then creates."""
    report = ApplyReport(kept={i: s.key for i, s in plan.keep.items()})
    for msm_id, reason in plan.stop:
        LOG.info("stopping measurement %d (%s)", msm_id, reason)
        client.stop(msm_id)
        report.stopped.append(msm_id)
    for request in plan.requests:
        if request.method != "POST":
            continue
        definitions = [(s.kind, s.definition(settings.tag)) for s in request.specs]
        ids = client.create(definitions, request.specs[0].source_dicts(), request.is_oneoff)
        for msm_id, spec in zip(ids, request.specs, strict=True):
            report.created[msm_id] = spec.key
        if request.is_oneoff:
            # periodic measurements are charged per result by RIPE Atlas; a one-off's
            # cost is known when it is created
            CREDITS_SPENT.inc(sum(s.credits_per_day(settings) for s in request.specs))
    return report


def reconcile(
    settings: AtlasSettings,
    client: MeasurementAPI,
    state: StateFile,
    collector: Collector | None = None,
    also_collect: Any = None,
) -> ApplyReport:
    """List what runs under our tag, plan, stop/create, remember the measurement ids and
    point the collector at them (and at ``also_collect()``: one-off measurements the
    scheduler created besides the plan, e.g. confirmation pings)."""
    existing = client.my_measurements(settings.tag)
    plan = plan_for(settings, existing)
    CREDITS_PLANNED.set(plan.credits_per_day(settings))
    report = apply_plan(plan, client, settings)
    state.measurements = {**report.kept, **report.created}
    state.save()
    if collector is not None:
        extra = set(also_collect()) if also_collect is not None else set()
        collector.set_measurements(set(state.measurements) | extra)
    LOG.info(
        "reconciled: %d kept, %d created, %d stopped, %d skipped",
        len(report.kept),
        len(report.created),
        len(report.stopped),
        len(plan.skipped),
    )
    return report


def backfill(collector: Collector) -> int:
    """Safety net: re-read every measurement's recent window from REST."""
    return collector.backfill()


def self_hosted_series(settings: AtlasSettings) -> list[TaskSeries]:
    """The probe task series of the configured inventory's self-hosted vantage sets."""
    return wanted_task_series(load_inventory(inventory_path(settings)))


def publish_probe_tasks(
    settings: AtlasSettings, bus: Bus, state: JsonState, now: float | None = None
) -> int:
    """Publish the self-hosted probe tasks that are due on the probe-tasks topic (keyed by
    vantage point), flush, then remember the rounds published (at least once: a crash
    between flush and save publishes those rounds again, with the same task ids)."""
    series = self_hosted_series(settings)
    with state.lock:
        due = due_tasks(series, state.data.get("rounds", {}), time.time() if now is None else now)
        for one, task in due.tasks:
            bus.publish(
                PROBE_TASKS,
                task.to_bytes(),
                key=task.vantage_point.encode(),
                headers=[(HEADER_SOURCE, b"scheduler"), (HEADER_ORIGIN, one.key.encode())],
            )
        if due.tasks:
            bus.flush()
        state.data["rounds"] = due.rounds
        state.save()
    PROBE_TASKS_PUBLISHED.inc(len(due.tasks))
    if due.tasks:
        LOG.info("published %d probe tasks for %d series", len(due.tasks), len(series))
    return len(due.tasks)


def active_ids(entries: Iterable[dict[str, Any]], now: float) -> set[int]:
    """Measurement ids of state entries whose ``collect_until`` has not passed."""
    return {int(e["msm_id"]) for e in entries
            if e.get("msm_id") and float(e.get("collect_until", 0)) > now}
