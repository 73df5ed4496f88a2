"""Prometheus Alertmanager v2 API: ``POST <alertmanager_url>/api/v2/alerts``.

Alertmanager expects clients to re-send active alerts: a firing alert is posted when it
opens and again every ``alertmanager_resend_s`` with ``endsAt`` a few intervals ahead (if
grenswacht stops, Alertmanager resolves it by itself after that); a resolved alert is posted
once with ``endsAt`` = the time it resolved. Labels identify the alert (Alertmanager groups
and de-duplicates on them): ``alertname``, ``alert_id``, ``application``, ``vantage_set``,
``address_family``, ``severity`` plus the configured extra labels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import requests

from consumers.alerts.deliver.base import DeliveryError
from schemas.alerts import RESOLVED, Alert
from schemas.retry import parse_retry_after

ALERTNAME = "GrenswachtJurisdictionChange"


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def alertmanager_alert(alert: Alert, *, resend_s: float, labels: Mapping[str, str],
                       now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.UTC)
    if alert.state == RESOLVED and alert.resolved_at is not None:
        ends = alert.resolved_at
    else:
        ends = now + dt.timedelta(seconds=max(resend_s * 4, 300.0))
    return {
        "labels": {
            "alertname": ALERTNAME, "alert_id": alert.alert_id,
            "application": alert.application, "vantage_set": alert.vantage_set,
            "address_family": str(alert.address_family), "severity": alert.severity,
            **dict(labels),
        },
        "annotations": {
            "summary": alert.summary,
            "before": orjson.dumps(alert.before.model_dump()).decode(),
            "after": orjson.dumps(alert.after.model_dump()).decode(),
            "municipalities": ", ".join(alert.municipalities),
            "added": ", ".join(alert.added),
            "note": alert.note,
        },
        "startsAt": _iso(alert.first_seen),
        "endsAt": _iso(ends),
    }


class AlertmanagerChannel:
    name = "alertmanager"

    def __init__(self, base_url: str, *, resend_s: float = 60.0,
                 labels: Mapping[str, str] | None = None, timeout_s: float = 10.0,
                 session: requests.Session | None = None) -> None:
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self.resend_s = resend_s
        self.labels = dict(labels or {})
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    def send(self, alert: Alert) -> None:
        self.post([alert])

    def post(self, alerts: Sequence[Alert]) -> None:
        body = orjson.dumps([alertmanager_alert(a, resend_s=self.resend_s, labels=self.labels)
                             for a in alerts])
        try:
            response = self.session.post(self.url, data=body, timeout=self.timeout_s,
                                         headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            raise DeliveryError(f"alertmanager {self.url}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(
                f"alertmanager {self.url}: HTTP {response.status_code} {response.text[:200]}",
                parse_retry_after(response.headers.get("Retry-After")))
