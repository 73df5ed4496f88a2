"""Continuous monitoring: alert when an application's route or hosting changes jurisdiction.

``state`` (atoms and observations per application, vantage set and address family),
``detect`` (confirmation, hysteresis, hold-down), ``deliver`` (webhook, apprise,
Alertmanager, outbox), ``store`` (ClickHouse), ``component`` (the running consumer).
See ``docs/alerts.md``.
"""

from consumers.alerts.component import AlertsComponent, create_component
from consumers.alerts.detect import ChangeDetector
from consumers.alerts.settings import AlertSettings
from consumers.alerts.state import ApplicationInfo, Applications, Observation, StateKey

__all__ = [
    "AlertSettings", "AlertsComponent", "ApplicationInfo", "Applications", "ChangeDetector",
    "Observation", "StateKey", "create_component",
]
