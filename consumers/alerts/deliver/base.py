"""The delivery seam: a channel sends one alert version, or raises :class:`DeliveryError`.

Foreign errors (requests, apprise) are mapped to :class:`DeliveryError` inside each channel,
once. The dispatcher retries with backoff; nothing is dropped.
"""

from __future__ import annotations

from typing import Protocol

from schemas.alerts import Alert
from schemas.errors import GrenswachtError


class DeliveryError(GrenswachtError):
    """A receiver did not accept an alert; retry later (``retry_after`` seconds if known)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert version; return only when the receiver accepted it."""


