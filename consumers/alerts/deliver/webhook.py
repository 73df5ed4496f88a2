"""The generic JSON webhook, signed with HMAC-SHA256.

Request: ``POST <webhook_url>`` with ``Content-Type: application/json`` and the body
``{"type": "grenswacht.alert", "delivery_id": "<alert_id>:<version>", "alert": {...}}``
(the :class:`schemas.alerts.Alert` model). Headers:

* ``X-Grenswacht-Delivery`` — ``<alert_id>:<version>``, the same on every retry (receivers
  drop repeats by it);
* ``X-Grenswacht-Timestamp`` — Unix seconds when this attempt was signed;
* ``X-Grenswacht-Signature`` — ``sha256=`` + hex HMAC-SHA256 with the shared secret over
  ``<timestamp>.<body bytes>``.

A receiver recomputes the HMAC over the raw body (:func:`verify_signature`), compares in
constant time and rejects timestamps older than a few minutes (replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import requests

from consumers.alerts.deliver.base import DeliveryError
from schemas.alerts import Alert
from schemas.retry import parse_retry_after

SIGNATURE_HEADER = "X-Grenswacht-Signature"
TIMESTAMP_HEADER = "X-Grenswacht-Timestamp"
DELIVERY_HEADER = "X-Grenswacht-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(secret: str, body: bytes, timestamp: str, signature: str, *,
                     tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does: recompute, compare in constant time, check the clock."""
    try:
        age = abs((now if now is not None else time.time()) - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook_body(alert: Alert) -> bytes:
    return orjson.dumps({"type": "grenswacht.alert", "delivery_id": alert.delivery_id,
                         "alert": alert.model_dump(mode="json")})


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0,
                 session: requests.Session | None = None) -> None:
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    def send(self, alert: Alert) -> None:
        body = webhook_body(alert)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "grenswacht-alerts",
            DELIVERY_HEADER: alert.delivery_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
        }
        try:
            response = self.session.post(self.url, data=body, headers=headers,
                                         timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise DeliveryError(f"webhook {self.url}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(
                f"webhook {self.url}: HTTP {response.status_code} {response.text[:200]}",
                parse_retry_after(response.headers.get("Retry-After")))
