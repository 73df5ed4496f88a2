"""apprise URLs: Slack (``slack://``), Microsoft Teams (``workflows://``), Matrix
(``matrix://``), e-mail (``mailto://``), generic ``json://`` and everything else apprise
supports. One channel per URL, so a failing service does not hold up the others."""

from __future__ import annotations

import apprise

from consumers.alerts.deliver.base import DeliveryError
from schemas.alerts import RESOLVED, Alert
from schemas.errors import ConfigError


def render(alert: Alert) -> tuple[str, str]:
    """Title and body in words an officer understands."""
    word = "resolved" if alert.state == RESOLVED else "jurisdiction change"
    title = f"[grenswacht {alert.severity}] {alert.application}: {word}"
    lines = [
        alert.summary,
        f"Before: {alert.before.verdict}; physically {', '.join(alert.before.physical) or '?'}"
        f"; law of {', '.join(alert.before.legal) or '?'}",
        f"After: {alert.after.verdict}; physically {', '.join(alert.after.physical) or '?'}"
        f"; law of {', '.join(alert.after.legal) or '?'}",
        f"First seen {alert.first_seen.isoformat()}, last seen {alert.last_seen.isoformat()}",
    ]
    if alert.municipalities:
        lines.append("Municipalities: " + ", ".join(alert.municipalities))
    for item in alert.evidence[:3]:
        lines.append(f"Evidence: {item.reason} (probe {item.result.probe_id}, "
                     f"msm {item.result.measurement_id}, rtt {item.rtt_ms} ms)")
    lines.append(f"Alert {alert.delivery_id}. {alert.note}")
    return title, "\n".join(lines)


class AppriseChannel:
    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ConfigError(f"alerts.apprise_urls: apprise does not understand {name}")

    def send(self, alert: Alert) -> None:
        title, body = render(alert)
        kind = apprise.NotifyType.SUCCESS if alert.state == RESOLVED else apprise.NotifyType.WARNING
        try:
            ok = self._apprise.notify(title=title, body=body, notify_type=kind)
        except Exception as exc:  # noqa: BLE001 - apprise plugins raise anything
            raise DeliveryError(f"{self.name}: {exc}") from exc
        if not ok:
            raise DeliveryError(f"{self.name}: the service did not accept the notification")
