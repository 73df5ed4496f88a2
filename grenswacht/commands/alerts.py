"""``grenswacht alerts list|show|ack``: the jurisdiction-change alerts, for people.

``list`` and ``show`` read the ``alerts`` table (through the running ``grenswacht run``
endpoint when one is up, else the store itself); ``ack`` records who acknowledged an alert
(``alert_acks``). The same data is in ``grenswacht sql "SELECT ... FROM alerts FINAL"``.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import typer

from consumers.alerts.store import AlertStore
from consumers.storage import open_storage
from grenswacht.client import remote_ack, remote_sql, running_endpoint
from grenswacht.commands.common import FormatOption, StorageOption, console, fail, settings
from grenswacht.render import OutputFormat, print_rows
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
    "ON k.alert_id = a.alert_id WHERE 1 {where} ORDER BY a.last_seen DESC LIMIT {limit}"
)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _query(sql: str, storage: str | None) -> tuple[list[str], list[list[Any]]]:
    cfg = settings()
    url = None if storage else running_endpoint(cfg.data_dir)
    try:
        if url is not None:
            answer = remote_sql(url, sql)
            return list(answer["columns"]), [list(r) for r in answer["rows"]]
        result = open_storage(storage or cfg.storage_dsn).query(sql, read_only=True)
    except GrenswachtError as exc:
        fail(str(exc))
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
    where = ""
    if state:
        where += f" AND a.state = {_quote(state)}"
    if application:
        where += f" AND a.application = {_quote(application)}"
    columns, rows = _query(_LIST_SQL.format(where=where, limit=int(limit)), storage)
    print_rows(console, columns, rows, fmt, title="alerts (forward paths only)")


@alerts_app.command("show")
def show(
    alert_id: Annotated[str, typer.Argument(
        help="Alert id, or a unique prefix of at least 8 characters.")],
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """One alert: before and after, the confirmation and the evidence."""
    sql = ("SELECT alert FROM alerts FINAL WHERE startsWith(alert_id, "  # noqa: S608 - quoted
           f"{_quote(alert_id)}) ORDER BY alert_id LIMIT 2")
    _columns, rows = _query(sql, storage)
    if len(rows) != 1:
        fail(f"no alert {alert_id!r}" if not rows else f"{alert_id!r} is not unique")
    alert = Alert.from_json(rows[0][0])
    ack_sql = ("SELECT acknowledged_at, acknowledged_by, comment FROM alert_acks "  # noqa: S608
               f"FINAL WHERE alert_id = {_quote(alert.alert_id)}")
    _cols, acks = _query(ack_sql, storage)
    if fmt is not OutputFormat.table:
        document = alert.model_dump(mode="json")
        document["acknowledged"] = (
            {"at": str(acks[0][0]), "by": acks[0][1], "comment": acks[0][2]} if acks else None)
        print(json.dumps(document, indent=2))
        return
    console.print(f"[bold]{alert.summary}[/]", highlight=False)
    console.print(f"alert {alert.alert_id} v{alert.version}: {alert.state}, severity "
                  f"{alert.severity}, first seen {alert.first_seen}, last seen "
                  f"{alert.last_seen}" + (f", resolved {alert.resolved_at}"
                                          if alert.resolved_at else ""), highlight=False)
    if alert.municipalities:
        console.print("municipalities: " + ", ".join(alert.municipalities), highlight=False)
    for label, value in (("before", alert.before), ("after", alert.after)):
        console.print(f"{label}: verdict {value.verdict}; physically "
                      f"{', '.join(value.physical) or '?'}; law of "
                      f"{', '.join(value.legal) or '?'}", highlight=False)
    console.print(f"confirmed: {alert.confirmation.rule}", highlight=False)
    rows_out = [[e.change, e.vantage_point, e.result.measurement_id, str(e.result.timestamp),
                 e.result.paris_id, e.hop, e.address, e.rtt_ms, e.bound_km,
                 e.us_distance_km, "; ".join(e.sources)] for e in alert.evidence]
    print_rows(console, ["change", "vantage point", "msm", "timestamp", "paris_id", "hop",
                         "address", "rtt_ms", "bound_km", "us_km", "sources"], rows_out,
               OutputFormat.table, title="evidence")
    if acks:
        console.print(f"acknowledged by {acks[0][1]} at {acks[0][0]}: {acks[0][2]}",
                      highlight=False)
    console.print(alert.note, style="dim", highlight=False)


@alerts_app.command("ack")
def ack(
    alert_id: Annotated[str, typer.Argument(
        help="Alert id, or a unique prefix of at least 8 characters.")],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why.")] = "",
    by: Annotated[str, typer.Option(help="Who (default: the login name).")] = "",
    storage: StorageOption = None,
) -> None:
    """Acknowledge an alert (it stays firing until the change goes away)."""
    cfg = settings()
    url = running_endpoint(cfg.data_dir) if storage is None else None
    if url is not None:  # grenswacht run holds the store: acknowledge through it
        try:
            done = remote_ack(url, alert_id, by or getpass.getuser(), comment)
        except GrenswachtError as exc:
            fail(str(exc))
        console.print(f"acknowledged {done['alert_id']} ({done['application']})",
                      highlight=False)
        return
    try:
        store = AlertStore(open_storage(storage or cfg.storage_dsn))
        found = store.get_alert(alert_id)
        if found is None:
            fail(f"no alert matches {alert_id!r}")
        alert, _ = found
        store.ack(alert.alert_id, by or getpass.getuser(), comment)
    except GrenswachtError as exc:
        fail(str(exc))
    console.print(f"acknowledged {alert.alert_id} ({alert.application})", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
