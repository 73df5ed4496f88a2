"""Deliver the outbox: every pending (alert version, channel), oldest version first, with
exponential backoff per delivery; Alertmanager also gets the firing alerts again on its
schedule.

Guarantees: a receiver that is down loses nothing (the row stays pending in ClickHouse and is
retried, across restarts); a delivery is marked delivered right after the receiver
acknowledged it, so a restart does not send it again. The one window left — a crash between
the receiver's 2xx and that mark — resends once, with the same ``X-Grenswacht-Delivery`` id.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consumers.alerts.deliver.alertmanager import AlertmanagerChannel
from consumers.alerts.deliver.apprise_channel import AppriseChannel
from consumers.alerts.deliver.base import Channel, DeliveryError
from consumers.alerts.deliver.webhook import WebhookChannel
from consumers.alerts.settings import AlertSettings
from consumers.alerts.store import AlertStore
from consumers.metrics import ALERTS_DELIVERED, ALERTS_FAILED
from schemas.errors import StorageError
from schemas.retry import RetryPolicy, retry_after_of

log = logging.getLogger(__name__)


def open_channels(settings: AlertSettings) -> dict[str, Channel]:
    """The channels the settings configure, by name (``webhook``, ``apprise:N``,
    ``alertmanager``)."""
    channels: dict[str, Channel] = {}
    if settings.webhook_url:
        channels["webhook"] = WebhookChannel(settings.webhook_url,
                                             settings.resolved_webhook_secret(),
                                             timeout_s=settings.http_timeout_s)
    for index, url in enumerate(settings.apprise_urls):
        channels[f"apprise:{index}"] = AppriseChannel(f"apprise:{index}", url)
    if settings.alertmanager_url:
        channels["alertmanager"] = AlertmanagerChannel(
            settings.alertmanager_url, resend_s=settings.alertmanager_resend_s,
            labels=settings.alertmanager_labels, timeout_s=settings.http_timeout_s)
    return channels


@dataclass
class DispatchStats:
    delivered: int = 0
    failed_attempts: int = 0
    refreshes: int = 0
    last_error: str = ""
    per_channel: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "failed_attempts": self.failed_attempts,
                "alertmanager_refreshes": self.refreshes, "last_error": self.last_error,
                "per_channel": dict(self.per_channel)}


class Dispatcher:
    def __init__(self, store: AlertStore, channels: Mapping[str, Channel], *,
                 retry_initial_s: float = 1.0, retry_max_s: float = 300.0,
                 resend_s: float = 60.0) -> None:
        self.store = store
        self.channels = dict(channels)
        self.retry = RetryPolicy(initial_s=retry_initial_s, max_s=retry_max_s)
        self.resend_s = resend_s
        self.stats = DispatchStats()
        self._last_refresh = time.monotonic()

    def backoff(self, attempts: int, retry_after: float = 0.0) -> float:
        """Wait after the ``attempts``-th failure (the one retry policy, schemas/retry.py):
        initial x 2^(attempts-1), at least the receiver's Retry-After, capped."""
        return self.retry.delay(attempts, retry_after)

    def dispatch(self, now: dt.datetime | None = None) -> int:
        """One pass over the outbox; returns deliveries made. Versions of one alert go out
        in order per channel: a later version waits while an earlier one is pending."""
        now = now or dt.datetime.now(dt.UTC)
        try:
            pending = self.store.pending()
        except StorageError as exc:
            self.stats.last_error = str(exc)
            return 0
        blocked: set[tuple[str, str]] = set()
        sent = 0
        for delivery, due in pending:
            lane = (delivery.alert_id, delivery.channel)
            if lane in blocked:
                continue
            blocked.add(lane)  # only the oldest pending version of each lane this pass
            channel = self.channels.get(delivery.channel)
            if channel is None or due > now:
                continue
            try:
                channel.send(delivery.alert)
            except DeliveryError as exc:
                wait = self.backoff(delivery.attempts + 1, retry_after_of(exc))
                self.stats.failed_attempts += 1
                ALERTS_FAILED.labels(delivery.channel).inc()
                self.stats.last_error = str(exc)
                log.warning("delivery %s:%s via %s failed (%s); retry in %.1f s",
                            delivery.alert_id, delivery.version, delivery.channel, exc, wait)
                self.store.record(delivery, delivered=False, error=str(exc),
                                  next_attempt_at=now + dt.timedelta(seconds=wait))
                continue
            self.store.record(delivery, delivered=True)
            sent += 1
            self.stats.delivered += 1
            ALERTS_DELIVERED.labels(delivery.channel).inc()
            per = self.stats.per_channel
            per[delivery.channel] = per.get(delivery.channel, 0) + 1
        self.refresh_alertmanager()
        return sent

    def refresh_alertmanager(self, *, force: bool = False) -> bool:
        """Re-send the firing alerts to Alertmanager every ``resend_s`` seconds."""
        channel = self.channels.get("alertmanager")
        if not isinstance(channel, AlertmanagerChannel):
            return False
        if not force and time.monotonic() - self._last_refresh < self.resend_s:
            return False
        self._last_refresh = time.monotonic()
        try:
            firing = self.store.firing()
            if firing:
                channel.post(firing)
        except (DeliveryError, StorageError) as exc:
            self.stats.last_error = str(exc)
            return False
        self.stats.refreshes += 1
        return True
