"""The alerts component: verdicts topic -> jurisdiction observations -> change detector ->
``alerts`` table + alerts topic + delivery outbox -> channels.

It reads the path verdicts the analysis published (:data:`schemas.topics.VERDICTS`, one
derivation: it never computes a verdict itself), turns each home path into an observation
(``consumers.alerts.state``) and feeds the change detector. Order of every batch (at least
once, idempotent): detect; write the alert rows, the outbox rows and the detector state to
ClickHouse; publish the new alert versions on :data:`schemas.topics.ALERTS`; **then** commit
the verdict offsets. A crash before the commit replays the batch: paths already counted are
ignored by the detector (event time per series; a window analysed again republishes its
paths), alert rows are replaced by identical ones, and outbox rows that exist are not
re-created. The dispatcher delivers the outbox between polls.

The lead runs it from ``grenswacht run`` (``grenswacht/embedded.py``) and from
``grenswacht consume alerts``: ``AlertsComponent(settings.alerts, storage, bus).run(stop)``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from consumers.alerts.deliver import Channel, Dispatcher, open_channels
from consumers.alerts.detect import ChangeDetector
from consumers.alerts.settings import AlertSettings
from consumers.alerts.state import Applications, StateKey, observations
from consumers.alerts.store import AlertStore
from consumers.storage import Storage
from schemas import topics
from schemas.alerts import Alert
from schemas.bus import Bus, Message, next_offsets
from schemas.errors import BusClosed, BusError, StorageError, StorageUnavailable
from schemas.retry import RetryPolicy
from schemas.verdicts import PathMessage, VerdictMessage

log = logging.getLogger(__name__)

APPLICATIONS_SQL = (
    "SELECT application, municipalities, hostnames, criticality FROM applications FINAL")
APPLICATIONS_REFRESH_S = 60.0


class AlertsComponent:
    name = "alerts"

    def __init__(self, settings: AlertSettings, storage: Storage, bus: Bus, *,
                 channels: Mapping[str, Channel] | None = None,
                 applications: Applications | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self.bus = bus
        self._channels = dict(channels) if channels is not None else None
        self._fixed_applications = applications
        self.store = AlertStore(storage)
        self.detector = ChangeDetector(settings)
        self.dispatcher: Dispatcher | None = None
        self.applications = applications or Applications(
            unmapped_targets=settings.unmapped_targets)
        self._applications_loaded = 0.0
        self._subscribed = False
        self.counters = {"paths": 0, "observations": 0, "alert_versions": 0,
                         "batches": 0, "retries": 0, "skipped": 0}

    # -- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        """Open the channels, load the detector state (I/O happens here)."""
        if self.dispatcher is not None:
            return
        channels = self._channels if self._channels is not None else open_channels(
            self.settings)
        self.dispatcher = Dispatcher(
            self.store, channels, retry_initial_s=self.settings.retry_initial_s,
            retry_max_s=self.settings.retry_max_s, resend_s=self.settings.alertmanager_resend_s)
        for key, state in self.store.load_states().items():
            self.detector.load_key(StateKey.parse(key), state)
        self._refresh_applications(force=True)

    @property
    def channel_names(self) -> list[str]:
        return sorted(self.dispatcher.channels) if self.dispatcher else []

    def _refresh_applications(self, *, force: bool = False) -> None:
        if self._fixed_applications is not None:
            return
        if not force and time.monotonic() - self._applications_loaded < APPLICATIONS_REFRESH_S:
            return
        self._applications_loaded = time.monotonic()
        try:
            rows = self.storage.query(APPLICATIONS_SQL).as_dicts()
        except StorageError as exc:
            log.warning("cannot read the applications table (%s); keeping the old mapping", exc)
            return
        self.applications = Applications.from_rows(
            rows, unmapped_targets=self.settings.unmapped_targets)

    # -- one batch -----------------------------------------------------------------------
    def detect(self, paths: Sequence[PathMessage]) -> list[Alert]:
        """Feed published path verdicts to the detector; the alert versions out."""
        self.setup()
        found = observations(paths, self.applications, self.settings.granularity,
                             transit_legal=self.settings.transit_legal,
                             home_only=self.settings.home_only)
        self.counters["paths"] += len(paths)
        self.counters["observations"] += len(found)
        events: list[Alert] = []
        for observation in found:
            events.extend(self.detector.feed(observation))
        return events

    def persist(self, events: Sequence[Alert]) -> None:
        """Alert rows (latest version per alert), outbox, detector state; then publish."""
        touched = set(self.detector.touched)
        latest: dict[str, Alert] = {alert.alert_id: alert for alert in events}
        for key in touched:
            open_alert = self.detector.keys[key].alert
            if open_alert is not None:
                latest[open_alert.alert_id] = open_alert
        self.store.save_alerts(latest.values())
        if self.dispatcher is not None:
            self.store.enqueue(events, sorted(self.dispatcher.channels))
        self.store.save_states({key.text: self.detector.dump_key(key) for key in touched})
        for alert in events:
            self.bus.publish(topics.ALERTS, alert.to_json(), key=alert.application.encode())
        if events:
            self.bus.flush()
        self.detector.touched.clear()
        self.counters["alert_versions"] += len(events)

    def process(self, messages: Sequence[Message], stop: threading.Event | None = None) -> None:
        """Detect, persist (retrying while storage or the bus fail), then commit."""
        paths: list[PathMessage] = []
        for message in messages:
            try:
                paths.extend(VerdictMessage.from_bytes(message.value).paths)
            except ValidationError as exc:  # written by the analysis: a bug, not input
                self.counters["skipped"] += 1
                log.error("skipping a verdict message that does not parse: %s", exc)
        paths.sort(key=lambda p: p.timestamp)
        events = self.detect(paths)

        def retrying(error: BaseException, seconds: float, failures: int) -> None:
            self.counters["retries"] += 1
            log.warning("storing alerts failed (%s); retrying in %.1f s", error, seconds)

        try:
            RetryPolicy(initial_s=0.2, max_s=self.settings.retry_max_s).call(
                lambda: self.persist(events), retry_on=(StorageUnavailable, BusError),
                never=(BusClosed,), stop=stop, on_retry=retrying)
        except (StorageError, BusError) as exc:
            if stop is None or not stop.is_set():
                raise
            log.error("alerts not stored (%s); not committed, will be replayed", exc)
            return
        self.bus.commit(next_offsets(messages))
        self.counters["batches"] += 1

    # -- the loop --------------------------------------------------------------------------
    def poll_once(self, timeout: float = 0.5, stop: threading.Event | None = None) -> int:
        self.setup()
        if not self._subscribed:
            self.bus.subscribe([topics.VERDICTS], self.settings.group)
            self._subscribed = True
        self._refresh_applications()
        messages = self.bus.poll(max_records=self.settings.batch_size, timeout=timeout)
        if messages:
            self.process(messages, stop)
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        """Consume and deliver until ``stop`` is set."""
        self.setup()
        last_dispatch = 0.0
        while not stop.is_set():
            self.poll_once(timeout=min(0.5, self.settings.dispatch_interval_s), stop=stop)
            if time.monotonic() - last_dispatch >= self.settings.dispatch_interval_s:
                last_dispatch = time.monotonic()
                if self.dispatcher is not None:
                    self.dispatcher.dispatch()

    def status(self) -> dict[str, Any]:
        return {
            **self.counters,
            "state_keys": len(self.detector.keys),
            "firing": len(self.detector.open_alerts()),
            "channels": self.channel_names,
            "delivery": self.dispatcher.stats.as_dict() if self.dispatcher else {},
        }


def create_component(settings: AlertSettings, storage: Storage,
                     bus: Bus) -> AlertsComponent | None:
    """The component when at least one channel is configured, else None (not wanted)."""
    if not settings.channels:
        return None
    return AlertsComponent(settings, storage, bus)
