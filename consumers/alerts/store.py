"""Alerts in ClickHouse: the ``alerts`` table, acknowledgements, the delivery outbox and
the detector state (``schemas/clickhouse/030_alerts.sql``). Every table is a
ReplacingMergeTree read with FINAL: a newer ``updated_at`` replaces the older row."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schemas.alerts import Alert
from schemas.errors import InputError

MIN_ID_PREFIX = 8
"""Fewest characters of an alert id prefix that ``ack``/``show`` accept."""


class AlertIdError(InputError):
    """An alert id that is empty, too short a prefix, or the prefix of several alerts."""


class _Storage(Protocol):
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any: ...

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]], *,
               dedup_token: str | None = None) -> int: ...


PENDING = "pending"
DELIVERED = "delivered"

ALERT_COLUMNS = (
    "alert_id", "version", "application", "vantage_set", "address_family", "municipalities",
    "criticality", "severity", "state", "first_seen", "last_seen", "resolved_at",
    "before_physical", "before_legal", "before_verdict", "after_physical", "after_legal",
    "after_verdict", "added", "flaps", "summary", "evidence", "alert", "updated_at",
)


@dataclass(slots=True)
class Delivery:
    alert_id: str
    version: int
    channel: str
    event: str
    attempts: int
    created_at: dt.datetime
    payload: str

    @property
    def alert(self) -> Alert:
        return Alert.from_json(self.payload)


class AlertStore:
    def __init__(self, storage: _Storage) -> None:
        self.storage = storage
        self._last = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        """Wall-clock time, strictly increasing (the version column of every table)."""
        with self._lock:
            now = dt.datetime.now(dt.UTC)
            if now <= self._last:
                now = self._last + dt.timedelta(milliseconds=1)
            self._last = now
            return now

    # -- alerts --------------------------------------------------------------------------
    def save_alerts(self, alerts: Iterable[Alert]) -> int:
        rows = list(alerts)
        if not rows:
            return 0
        columns: dict[str, list[Any]] = {name: [] for name in ALERT_COLUMNS}
        updated = self.now()
        for a in rows:
            values = (
                a.alert_id, a.version, a.application, a.vantage_set, a.address_family,
                a.municipalities, a.criticality, a.severity, a.state, a.first_seen,
                a.last_seen, a.resolved_at, a.before.physical, a.before.legal,
                a.before.verdict, a.after.physical, a.after.legal, a.after.verdict, a.added,
                a.flaps, a.summary, json.dumps([e.model_dump(mode="json") for e in a.evidence]),
                a.model_dump_json(), updated,
            )
            for name, value in zip(ALERT_COLUMNS, values, strict=True):
                columns[name].append(value)
        return self.storage.insert("alerts", columns)

    def list_alerts(self, *, state: str = "", application: str = "",
                    limit: int = 100) -> list[dict[str, Any]]:
        sql = (
            "SELECT a.alert_id AS alert_id, a.version AS version, a.application AS application,"
            " a.vantage_set AS vantage_set, a.address_family AS address_family,"
            " a.severity AS severity, a.state AS state, a.first_seen AS first_seen,"
            " a.last_seen AS last_seen, a.before_verdict AS before_verdict,"
            " a.after_verdict AS after_verdict, a.added AS added, a.summary AS summary,"
            " k.acknowledged_by AS acknowledged_by "
            "FROM alerts AS a FINAL LEFT JOIN (SELECT * FROM alert_acks FINAL) AS k"
            " ON k.alert_id = a.alert_id "
            "WHERE ({state:String} = '' OR a.state = {state:String})"
            " AND ({application:String} = '' OR a.application = {application:String}) "
            "ORDER BY a.last_seen DESC, a.alert_id LIMIT {limit:UInt32}"
        )
        return list(self.storage.query(sql, {"state": state, "application": application,
                                             "limit": limit}).as_dicts())

    def get_alert(self, alert_id: str) -> tuple[Alert, dict[str, Any] | None] | None:
        """The alert with exactly this id, or the one whose id starts with it (a prefix of
        at least :data:`MIN_ID_PREFIX` characters), with its acknowledgement; None when no
        alert matches. An empty, too short or ambiguous prefix raises :class:`AlertIdError`."""
        alert_id = alert_id.strip()
        if not alert_id:
            raise AlertIdError("an alert id is needed (an empty one would match every alert)")
        found = self.storage.query(
            "SELECT alert FROM alerts FINAL WHERE alert_id = {id:String}", {"id": alert_id}).rows
        if not found:
            if len(alert_id) < MIN_ID_PREFIX:
                raise AlertIdError(f"{alert_id!r} is no alert id; a prefix needs at least "
                                   f"{MIN_ID_PREFIX} characters")
            found = self.storage.query(
                "SELECT alert FROM alerts FINAL WHERE startsWith(alert_id, {id:String}) "
                "ORDER BY alert_id LIMIT 2", {"id": alert_id}).rows
            if len(found) > 1:
                raise AlertIdError(f"{alert_id!r} is the start of more than one alert id; "
                                   "give more characters")
        if not found:
            return None
        alert = Alert.from_json(found[0][0])
        acks = self.storage.query(
            "SELECT acknowledged_at, acknowledged_by, comment FROM alert_acks FINAL "
            "WHERE alert_id = {id:String}", {"id": alert.alert_id}).as_dicts()
        return alert, (acks[0] if acks else None)

    def ack(self, alert_id: str, by: str, comment: str = "") -> None:
        self.storage.insert("alert_acks", {
            "alert_id": [alert_id], "acknowledged_at": [self.now()],
            "acknowledged_by": [by], "comment": [comment]})

    def firing(self) -> list[Alert]:
        rows = self.storage.query(
            "SELECT alert FROM alerts FINAL WHERE state = 'firing' ORDER BY alert_id").rows
        return [Alert.from_json(row[0]) for row in rows]

    # -- detector state ----------------------------------------------------------------------
    def save_states(self, states: Mapping[str, dict[str, Any]]) -> None:
        if not states:
            return
        updated = self.now()
        self.storage.insert("alert_detector_state", {
            "state_key": list(states), "state": [json.dumps(s) for s in states.values()],
            "updated_at": [updated] * len(states)})

    def load_states(self) -> dict[str, dict[str, Any]]:
        rows = self.storage.query("SELECT state_key, state FROM alert_detector_state FINAL").rows
        return {str(key): json.loads(state) for key, state in rows}

    # -- delivery outbox ---------------------------------------------------------------------
    def enqueue(self, alerts: Sequence[Alert], channels: Sequence[str]) -> int:
        """Add a pending delivery per (alert version, channel) unless it already exists
        (a replay after a crash must not reset a delivered row)."""
        if not alerts or not channels:
            return 0
        ids = sorted({a.alert_id for a in alerts})
        known = {
            (str(a), int(v), str(c)) for a, v, c in self.storage.query(
                "SELECT alert_id, version, channel FROM alert_deliveries FINAL "
                "WHERE alert_id IN {ids:Array(String)}", {"ids": ids}).rows
        }
        now = self.now()
        rows = [(a, c) for a in alerts for c in channels
                if (a.alert_id, a.version, c) not in known]
        if not rows:
            return 0
        self.storage.insert("alert_deliveries", {
            "alert_id": [a.alert_id for a, _ in rows],
            "version": [a.version for a, _ in rows],
            "channel": [c for _, c in rows],
            "event": [a.state for a, _ in rows],
            "status": [PENDING] * len(rows),
            "attempts": [0] * len(rows),
            "next_attempt_at": [now] * len(rows),
            "last_error": [""] * len(rows),
            "created_at": [now] * len(rows),
            "delivered_at": [None] * len(rows),
            "payload": [a.model_dump_json() for a, _ in rows],
            "updated_at": [now] * len(rows),
        })
        return len(rows)

    def pending(self, limit: int = 1000) -> list[tuple[Delivery, dt.datetime]]:
        """Every pending delivery, oldest version first, with its next attempt time."""
        rows = self.storage.query(
            "SELECT alert_id, version, channel, event, attempts, created_at, payload, "
            "next_attempt_at FROM alert_deliveries FINAL WHERE status = 'pending' "
            "ORDER BY created_at, alert_id, version, channel LIMIT {limit:UInt32}",
            {"limit": limit}).rows
        out = []
        for alert_id, version, channel, event, attempts, created, payload, due in rows:
            out.append((Delivery(str(alert_id), int(version), str(channel), str(event),
                                 int(attempts), _utc(created), str(payload)), _utc(due)))
        return out

    def record(self, delivery: Delivery, *, delivered: bool, error: str = "",
               next_attempt_at: dt.datetime | None = None) -> None:
        now = self.now()
        self.storage.insert("alert_deliveries", {
            "alert_id": [delivery.alert_id], "version": [delivery.version],
            "channel": [delivery.channel], "event": [delivery.event],
            "status": [DELIVERED if delivered else PENDING],
            "attempts": [delivery.attempts + 1],
            "next_attempt_at": [next_attempt_at or now], "last_error": [error[:2000]],
            "created_at": [delivery.created_at], "delivered_at": [now if delivered else None],
            "payload": [delivery.payload], "updated_at": [now],
        })

    def delivery_counts(self) -> dict[str, int]:
        rows = self.storage.query(
            "SELECT status, count() FROM alert_deliveries FINAL GROUP BY status").rows
        return {str(status): int(count) for status, count in rows}


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)
