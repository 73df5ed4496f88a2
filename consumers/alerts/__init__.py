"""Continuous monitoring: alert when an application's route or hosting changes jurisdiction.

``state`` (atoms and observations per application, vantage set and address family),
``detect`` (confirmation, hysteresis, hold-down), ``deliver`` (webhook, apprise,
Alertmanager, outbox), ``store`` (ClickHouse), ``component`` (the running consumer).
See ``docs/alerts.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consumers.alerts.component import AlertsComponent, create_component
    from consumers.alerts.detect import ChangeDetector
    from consumers.alerts.settings import AlertSettings
    from consumers.alerts.state import ApplicationInfo, Applications, Observation, StateKey

# Imported on first use: the settings module is read by every CLI start, the delivery
# channels (apprise) and the detector are not needed for that.
_WHERE = {
    "AlertsComponent": "component", "create_component": "component",
    "ChangeDetector": "detect", "AlertSettings": "settings", "ApplicationInfo": "state",
    "Applications": "state", "Observation": "state", "StateKey": "state",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"consumers.alerts.{_WHERE[name]}"), name)
    raise AttributeError(name)


__all__ = [
    "AlertSettings", "AlertsComponent", "ApplicationInfo", "Applications", "ChangeDetector",
    "Observation", "StateKey", "create_component",
]
