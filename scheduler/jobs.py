"""The scheduler's jobs as plain functions (APScheduler only calls them, in ``app.py``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scheduler.atlas import create_body
from scheduler.collector import Collector, StateFile
from scheduler.inventory import load_inventory
from scheduler.metrics import CREDITS_PLANNED, CREDITS_SPENT
from scheduler.plan import Plan, make_plan
from scheduler.settings import AtlasSettings
from schemas.errors import ConfigError

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
) -> ApplyReport:
    """List what runs under our tag, plan, stop/create, remember the measurement ids and
    point the collector at them."""
    existing = client.my_measurements(settings.tag)
    plan = plan_for(settings, existing)
    CREDITS_PLANNED.set(plan.credits_per_day(settings))
    report = apply_plan(plan, client, settings)
    state.measurements = {**report.kept, **report.created}
    state.save()
    if collector is not None:
        collector.set_measurements(state.measurements)
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
