"""``grenswacht plan``, ``grenswacht schedule`` and ``grenswacht inventory check``."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from grenswacht.render import OutputFormat, print_rows, say
from scheduler.plan import MEASUREMENTS_PATH, Plan
from scheduler.selfhosted import TaskSeries
from scheduler.settings import AtlasSettings
from schemas.errors import GrenswachtError
from schemas.redact import redact

ConfigOption = Annotated[Path | None, typer.Option("--config", help="grenswacht.toml to use.")]
InventoryOption = Annotated[
    Path | None,
    typer.Option("--inventory", "-i", help="apps.toml or apps.csv (default: atlas.inventory)."),
]
FormatOption = Annotated[OutputFormat, typer.Option(
    "--format", "-f", help="table, json (the whole plan) or csv (one row per measurement).")]
MEASUREMENT_COLUMNS = ("measurement", "applications", "criticality", "probes", "interval_s",
                       "credits_per_result", "credits_per_day", "oneoff_credits")


def _fail(exc: GrenswachtError) -> typer.Exit:
    Console(stderr=True).print(Text.assemble(("error:", "red"), " ", redact(str(exc))),
                               soft_wrap=True)
    return typer.Exit(code=2)


def _settings(config: Path | None, inventory: Path | None) -> tuple[Any, AtlasSettings]:
    from grenswacht.commands.common import settings as global_settings
    from grenswacht.settings import load_settings

    # this command's own --config wins; else the global one (grenswacht --config X plan)
    settings = load_settings(config) if config is not None else global_settings()
    atlas = settings.atlas
    if inventory is not None:
        atlas = atlas.model_copy(update={"inventory": inventory})
    return settings, atlas


def plan_document(
    plan: Plan,
    atlas: AtlasSettings,
    series: Sequence[TaskSeries] = (),
    confirmations: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The plan as data: exact requests (no key), the credit figures, the self-hosted
    probe task series (no credits) and the queued confirmation pings."""
    base = atlas.base_url.rstrip("/")
    return {
        "confirmations": [
            {**c, "requests": [
                *({"method": q["method"], "url": f"{base}{q['path']}", "params": q["params"]}
                  for q in c["searches"]),
                *([{"method": "POST", "url": f"{base}{MEASUREMENTS_PATH}",
                    "headers": {"Authorization": "Key **********"}, "json": c["body"]}]
                  if c["body"] is not None else []),
            ]}
            for c in confirmations
        ],
        "confirm_credits": sum(c["credits"] for c in confirmations),
        "confirm_daily_credits": atlas.confirm.daily_credits,
        "probe_tasks": [
            {
                "key": s.key,
                "task": s.label,
                "kind": s.kind,
                "vantage_point": s.vantage_point,
                "applications": list(s.applications),
                "interval_s": s.interval_s,
                "msm_id": s.msm_id,
                "example": json.loads(s.task(0).to_bytes()),
                "credits": 0,
            }
            for s in series
        ],
        "requests": [
            {
                "method": r.method,
                "url": f"{base}{r.path}",
                "headers": {"Authorization": "Key **********", "Content-Type": "application/json"},
                **({"json": r.body} if r.body is not None else {}),
            }
            for r in plan.requests
        ],
        "measurements": [
            {
                "key": s.key,
                "measurement": s.label,
                "applications": list(s.applications),
                "criticality": s.criticality.value,
                "probes": s.probes,
                "interval_s": s.interval_s,
                "credits_per_result": s.credits_per_result(atlas),
                "credits_per_day": s.credits_per_day(atlas) if s.interval_s else 0,
                "oneoff_credits": 0 if s.interval_s else s.credits_per_day(atlas),
            }
            for s in plan.selected
        ],
        "skipped": [{"measurement": s.label, "reason": why} for s, why in plan.skipped],
        "keep": sorted(plan.keep),
        "stop": [{"id": i, "reason": why} for i, why in plan.stop],
        "concurrent_measurements": len(plan.selected),
        "credits_per_day": plan.credits_per_day(atlas),
        "oneoff_credits": plan.oneoff_credits(atlas),
        "daily_credit_budget": atlas.daily_credit_budget,
    }


def _render(doc: dict[str, Any], console: Console, dry_run: bool) -> None:
    title = "Requests that would be sent (nothing was sent)" if dry_run else "Requests sent"
    console.rule(title)
    for request in doc["requests"]:
        say(console, f"{request['method']} {request['url']}")
        for name, value in request["headers"].items():
            say(console, f"{name}: {value}")
        if "json" in request:
            say(console, json.dumps(request["json"], indent=2, sort_keys=True))
        console.print(soft_wrap=True)
    rows = []
    for m in doc["measurements"]:
        interval = f"{m['interval_s']} s" if m["interval_s"] else "one-off"
        per_day = m["credits_per_day"] if m["interval_s"] else f"{m['oneoff_credits']} once"
        rows.append([m["measurement"], m["probes"], interval, m["credits_per_result"], per_day])
    print_rows(console, ["measurement", "probes", "interval", "credits/result", "credits/day"],
               rows, OutputFormat.table, title="Credits")
    if doc["probe_tasks"]:
        print_rows(console, ["task", "interval", "msm_id", "applications"],
                   [[t["task"], f"{t['interval_s']} s", t["msm_id"], ", ".join(t["applications"])]
                    for t in doc["probe_tasks"]], OutputFormat.table,
                   title="Self-hosted probe tasks (probe-tasks topic, no credits)")
    for c in doc["confirmations"]:
        say(console, f"confirmation ping: is {c['address']} in {c['claimed_country']}? "
            f"{c['probes']} probes (near the claim and the alternative "
            f"{c['alternative_country'] or '-'}), {c['credits']} credits")
        for request in c["requests"]:
            params = request.get("params")
            query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
            say(console, f"  {request['method']} {request['url']}{query}")
            if "json" in request:
                say(console, json.dumps(request["json"], indent=2, sort_keys=True))
    for skipped in doc["skipped"]:
        say(console, f"skipped: {skipped['measurement']}: {skipped['reason']}")
    say(console,
        f"measurements: {doc['concurrent_measurements']} concurrent, "
        f"{len(doc['keep'])} kept, {len(doc['stop'])} to stop\n"
        f"credits per day: {doc['credits_per_day']} (budget {doc['daily_credit_budget']}); "
        f"one-off credits: {doc['oneoff_credits']}; "
        f"self-hosted probe task series: {len(doc['probe_tasks'])} (no credits); "
        f"confirmation pings queued: {len(doc['confirmations'])}, "
        f"{doc['confirm_credits']} credits (budget {doc['confirm_daily_credits']} per day)")


def register(app: typer.Typer) -> None:
    inventory_app = typer.Typer(help="Check the application inventory.", no_args_is_help=True)
    app.add_typer(inventory_app, name="inventory")

    @inventory_app.command("check")
    def inventory_check(path: Path) -> None:
        """Validate an inventory (apps.toml or apps.csv); errors name file, line and field."""
        from scheduler.inventory import load_inventory
        from scheduler.plan import wanted_measurements
        from scheduler.selfhosted import wanted_task_series

        try:
            inventory = load_inventory(path)
        except GrenswachtError as exc:
            raise _fail(exc) from None
        say(Console(),
            f"{path}: ok: {len(inventory.applications)} applications, "
            f"{len(inventory.vantage_sets)} vantage sets, "
            f"{len(wanted_measurements(inventory))} RIPE Atlas measurements, "
            f"{len(wanted_task_series(inventory))} self-hosted probe task series")

    @app.command("plan")
    def plan_command(
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print requests, send nothing.")
        ] = False,
        inventory: InventoryOption = None,
        config: ConfigOption = None,
        output: FormatOption = OutputFormat.table,
    ) -> None:
        """Plan RIPE Atlas measurements for the inventory: credits per day, and the exact
        API requests. Without --dry-run: reconcile (by tag), stop and create."""
        from scheduler import jobs
        from scheduler.atlas import create_body, open_atlas
        from scheduler.collector import StateFile
        from scheduler.confirm import dry_run_entries
        from scheduler.jsonstate import JsonState

        try:
            settings, atlas = _settings(config, inventory)
            if dry_run:
                plan = jobs.plan_for(atlas)
            else:
                client = open_atlas(atlas)
                plan = jobs.plan_for(atlas, client.my_measurements(atlas.tag))
                state = StateFile(atlas.state_file or settings.data_dir / "atlas-state.json")
                report = jobs.apply_plan(plan, client, atlas)
                state.load()
                state.measurements = {**report.kept, **report.created}
                state.save()
            series = jobs.self_hosted_series(atlas)
            queued = dry_run_entries(
                JsonState(settings.data_dir / "atlas-confirm.json").load(), atlas, create_body
            )
        except GrenswachtError as exc:
            raise _fail(exc) from None
        doc = plan_document(plan, atlas, series, queued)
        if output is OutputFormat.json:
            typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        elif output is OutputFormat.csv:
            print_rows(Console(), MEASUREMENT_COLUMNS,
                       [[m[c] for c in MEASUREMENT_COLUMNS] for m in doc["measurements"]], output)
        else:
            _render(doc, Console(), dry_run)

    @app.command("schedule")
    def schedule_command(config: ConfigOption = None, inventory: InventoryOption = None) -> None:
        """Run the scheduler alone until interrupted: with a RIPE Atlas key the
        measurements and their collector (results to the configured bus, e.g. Kafka);
        always the self-hosted probe tasks and probe metadata when configured."""
        from grenswacht.commands.common import open_configured_bus
        from grenswacht.health import serve
        from scheduler.app import start_scheduler, wanted

        console = Console(stderr=True)
        try:
            settings, atlas = _settings(config, inventory)
            if not wanted(atlas):
                raise GrenswachtError(
                    "nothing to schedule: set a RIPE Atlas API key (GRENSWACHT_ATLAS__API_KEY "
                    "or atlas.api_key_file), self-hosted vantage sets in the inventory, or "
                    "atlas.probe_metadata.enabled"
                )
            bus = open_configured_bus(settings)
            inbox = open_configured_bus(settings)
            handle = start_scheduler(atlas, bus, settings.data_dir, inbox_bus=inbox)
        except GrenswachtError as exc:
            raise _fail(exc) from None
        serve(settings.metrics, handle.alive)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        jobs_running = ", ".join(j.id for j in handle.scheduler.get_jobs()) or "none"
        say(console, f"scheduling ({jobs_running}); results and tasks to "
            f"{redact(settings.bus)} (Ctrl-C stops)")
        try:
            while not done.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            handle.shutdown()
            inbox.close()
            bus.close()
        say(console, f"stopped: {handle.collector.published} results published")
