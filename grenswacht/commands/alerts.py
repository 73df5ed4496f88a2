"""``grenswacht alerts list|show|ack``: the jurisdiction-change alerts, for people.

``list`` and ``show`` read the ``alerts`` table (through the running ``grenswacht run``
endpoint when one is up, else the store itself); ``ack`` records who acknowledged an alert
(``alert_acks``). The same data is in ``grenswacht sql "SELECT ... FROM alerts FINAL"``.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer

from grenswacht.commands.common import (
    FormatOption,
    StorageOption,
    console,
    fail,
    open_cli_store,
)
from grenswacht.render import OutputFormat, print_json, print_rows, say
from grenswacht.store import acknowledge_alert
from schemas.alerts import Alert
from schemas.errors import GrenswachtError

alerts_app = typer.Typer(help="Jurisdiction-change alerts: list, show, acknowledge.",
                         no_args_is_help=True)

_LIST_SQL = (
    "SELECT a.alert_id AS alert_id, a.application AS application, "
    "a.vantage_set AS vantage_set, a.address_family AS af, a.severity AS severity, "
    "a.state AS state, a.first_seen AS first_seen, a.last_seen AS last_seen, "
    "a.before_verdict AS before, a.after_verdict AS after, a.added AS added, "
    "k.acknowledged_by AS acknowledged_by "
    "FROM alerts AS a FINAL LEFT JOIN (SELECT * FROM alert_acks FINAL) AS k "
    "ON k.alert_id = a.alert_id WHERE ({state:String} = '' OR a.state = {state:String}) "
    "AND ({application:String} = '' OR a.application = {application:String}) "
    "ORDER BY a.last_seen DESC LIMIT {limit:UInt32}"
)


def _query(sql: str, storage: str | None,
           params: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    store = open_cli_store(storage)
    try:
        result = store.query(sql, params)
    except GrenswachtError as exc:
        fail(str(exc))
    finally:
        store.close()
    return list(result.column_names), [list(r) for r in result.rows]


@alerts_app.command("list")
def list_alerts(
    state: Annotated[str, typer.Option(help="firing or resolved (default: both).")] = "",
    application: Annotated[str, typer.Option(help="Only this application.")] = "",
    limit: Annotated[int, typer.Option(min=1, help="Most alerts shown.")] = 100,
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Alerts, newest first."""
    columns, rows = _query(_LIST_SQL, storage,
                           {"state": state, "application": application, "limit": limit})
    print_rows(console, columns, rows, fmt, title="alerts (forward paths only)")


@alerts_app.command("show")
def show(
    alert_id: Annotated[str, typer.Argument(
        help="Alert id, or a unique prefix of at least 8 characters.")],
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """One alert: before and after, the confirmation and the evidence (CSV: the evidence
    rows; JSON: the whole alert)."""
    _columns, rows = _query("SELECT alert FROM alerts FINAL WHERE startsWith(alert_id, "
                            "{prefix:String}) ORDER BY alert_id LIMIT 2", storage,
                            {"prefix": alert_id})
    if len(rows) != 1:
        fail(f"no alert {alert_id!r}" if not rows else f"{alert_id!r} is not unique")
    alert = Alert.from_json(rows[0][0])
    _cols, acks = _query("SELECT acknowledged_at, acknowledged_by, comment FROM alert_acks "
                         "FINAL WHERE alert_id = {alert_id:String}", storage,
                         {"alert_id": alert.alert_id})
    evidence_columns = ["change", "vantage point", "msm", "timestamp", "paris_id", "hop",
                        "address", "rtt_ms", "bound_km", "us_km", "sources"]
    evidence = [[e.change, e.vantage_point, e.result.measurement_id, e.result.timestamp,
                 e.result.paris_id, e.hop, e.address, e.rtt_ms, e.bound_km,
                 e.us_distance_km, "; ".join(e.sources)] for e in alert.evidence]
    if fmt is OutputFormat.json:
        document = alert.model_dump(mode="json")
        document["acknowledged"] = (
            {"at": str(acks[0][0]), "by": acks[0][1], "comment": acks[0][2]} if acks else None)
        print_json(console, document)
        return
    if fmt is OutputFormat.csv:  # the evidence, one row per reply that changed
        print_rows(console, evidence_columns, evidence, fmt)
        return
    say(console, alert.summary, style="bold")
    say(console, f"alert {alert.alert_id} v{alert.version}: {alert.state}, severity "
        f"{alert.severity}, first seen {alert.first_seen}, last seen {alert.last_seen}"
        + (f", resolved {alert.resolved_at}" if alert.resolved_at else ""))
    if alert.municipalities:
        say(console, "municipalities: " + ", ".join(alert.municipalities))
    for label, value in (("before", alert.before), ("after", alert.after)):
        say(console, f"{label}: verdict {value.verdict}; physically "
            f"{', '.join(value.physical) or '?'}; law of {', '.join(value.legal) or '?'}")
    say(console, f"confirmed: {alert.confirmation.rule}")
    print_rows(console, evidence_columns, evidence, OutputFormat.table, title="evidence")
    if acks:
        say(console, f"acknowledged by {acks[0][1]} at {acks[0][0]}: {acks[0][2]}")
    say(console, alert.note, style="dim")


@alerts_app.command("ack")
def ack(
    alert_id: Annotated[str, typer.Argument(
        help="Alert id, or a unique prefix of at least 8 characters.")],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why.")] = "",
    by: Annotated[str, typer.Option(help="Who (default: the login name).")] = "",
    storage: StorageOption = None,
) -> None:
    """Acknowledge an alert (it stays firing until the change goes away)."""
    store = open_cli_store(storage)
    try:
        done = acknowledge_alert(store, alert_id, by or getpass.getuser(), comment)
    except GrenswachtError as exc:
        fail(str(exc))
    finally:
        store.close()
    say(console, f"acknowledged {done['alert_id']} ({done['application']})")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
