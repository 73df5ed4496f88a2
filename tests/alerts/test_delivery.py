"""Each channel against a loopback receiver, and the outbox rules."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from consumers.alerts.deliver import (
    AlertmanagerChannel,
    AppriseChannel,
    DeliveryError,
    Dispatcher,
    WebhookChannel,
    verify_signature,
)
from consumers.alerts.deliver.webhook import sign, webhook_body
from consumers.alerts.settings import AlertSettings
from consumers.alerts.store import AlertStore
from consumers.storage import Storage
from schemas.alerts import RESOLVED, Alert, JurisdictionState
from schemas.errors import ConfigError
from tests.alerts.conftest import SECRET, Receiver

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def make_alert(version: int = 1, state: str = "firing") -> Alert:
    alert = Alert(
        alert_id="a1b2c3", version=version, application="TOPdesk", vantage_set="nl",
        address_family=4, municipalities=["Utrecht", "Zeist"], criticality="high",
        severity="high", first_seen=T0, last_seen=T0 + dt.timedelta(minutes=30),
        before=JurisdictionState(physical=["EU"], legal=["EU"],
                                 verdict="eu_hosted_eu_operated"),
        after=JurisdictionState(physical=["EU", "US"], legal=["EU", "US"],
                                verdict="routed_via_us"),
        added=["physical:US"], summary="TOPdesk: traffic now physically passes US")
    if state == RESOLVED:
        alert.state = RESOLVED
        alert.resolved_at = T0 + dt.timedelta(hours=2)
    return alert


def test_signature_round_trip_and_tampering() -> None:
    body = webhook_body(make_alert())
    now = time.time()
    signature = sign(SECRET, str(int(now)), body)
    assert verify_signature(SECRET, body, str(int(now)), signature, now=now)
    assert not verify_signature(SECRET, body + b" ", str(int(now)), signature, now=now)
    assert not verify_signature("other", body, str(int(now)), signature, now=now)
    assert not verify_signature(SECRET, body, str(int(now)), signature, now=now + 3600)


def test_webhook_with_a_wrong_secret_is_rejected_by_the_receiver(
        webhook_receiver: Receiver) -> None:
    with pytest.raises(DeliveryError, match="HTTP 401"):
        WebhookChannel(webhook_receiver.url, "not-the-secret").send(make_alert())
    assert webhook_receiver.received == [] and len(webhook_receiver.rejected) == 1
    WebhookChannel(webhook_receiver.url, SECRET).send(make_alert())
    (got,) = webhook_receiver.received
    assert got["_delivery"] == "a1b2c3:1" and got["alert"]["after"]["verdict"] == "routed_via_us"


def test_apprise_json_url_reaches_a_loopback_receiver(json_receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{json_receiver.port}/notify"
    AppriseChannel("apprise:0", url).send(make_alert())
    (got,) = json_receiver.wait_for(1)
    assert "TOPdesk" in got["title"] and "routed_via_us" in got["message"]
    assert "Utrecht" in got["message"]
    json_receiver.stop()
    with pytest.raises(DeliveryError):
        AppriseChannel("apprise:0", url).send(make_alert())
    with pytest.raises(ConfigError):
        AppriseChannel("apprise:1", "no-such-scheme://x")


def test_alertmanager_gets_firing_then_resolved_and_refreshes(
        storage: Storage, alertmanager_receiver: Receiver) -> None:
    store = AlertStore(storage)
    channel = AlertmanagerChannel(alertmanager_receiver.url, resend_s=60,
                                  labels={"team": "gemeente"})
    dispatcher = Dispatcher(store, {"alertmanager": channel}, resend_s=3600)
    firing = make_alert()
    store.save_alerts([firing])
    store.enqueue([firing], ["alertmanager"])
    assert dispatcher.dispatch() == 1
    assert not dispatcher.refresh_alertmanager()  # not due yet
    assert dispatcher.refresh_alertmanager(force=True)  # active alerts are re-sent
    resolved = make_alert(2, RESOLVED)
    store.save_alerts([resolved])
    store.enqueue([resolved], ["alertmanager"])
    assert dispatcher.dispatch() == 1
    got = alertmanager_receiver.received
    assert [a["labels"]["alert_id"] for a in got] == ["a1b2c3"] * 3
    assert got[0]["labels"]["team"] == "gemeente" and got[0]["startsAt"] == "2026-03-02T09:00:00Z"
    assert got[-1]["endsAt"] == "2026-03-02T11:00:00Z"
    dispatcher.refresh_alertmanager(force=True)
    assert len(alertmanager_receiver.received) == 3  # nothing firing any more


def test_backoff_grows_and_later_versions_wait(storage: Storage,
                                               webhook_receiver: Receiver) -> None:
    store = AlertStore(storage)
    dispatcher = Dispatcher(store, {"webhook": WebhookChannel(webhook_receiver.url, SECRET)},
                            retry_initial_s=0.5, retry_max_s=4.0)
    assert [dispatcher.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    webhook_receiver.stop()
    store.enqueue([make_alert()], ["webhook"])
    store.enqueue([make_alert(2, RESOLVED)], ["webhook"])
    now = dt.datetime.now(dt.UTC)  # one clock for both: a slow machine is not "later"
    assert dispatcher.dispatch(now=now) == 0
    assert dispatcher.dispatch(now=now) == 0  # not due yet: no second attempt
    assert dispatcher.stats.failed_attempts == 1
    webhook_receiver.start()
    later = now + dt.timedelta(seconds=1)
    assert dispatcher.dispatch(now=later) == 1  # version 1 first ...
    assert dispatcher.dispatch(now=later) == 1  # ... then version 2
    assert [d["_delivery"] for d in webhook_receiver.received] == ["a1b2c3:1", "a1b2c3:2"]
    assert store.delivery_counts() == {"delivered": 2}


def test_settings_need_a_secret_for_the_webhook() -> None:
    with pytest.raises(ConfigError):
        AlertSettings(webhook_url="http://127.0.0.1:1/x").resolved_webhook_secret()
    assert AlertSettings(webhook_url="http://127.0.0.1:1/x", apprise_urls=["json://x"],
                         alertmanager_url="http://127.0.0.1:2").channels == [
        "webhook", "apprise:0", "alertmanager"]
