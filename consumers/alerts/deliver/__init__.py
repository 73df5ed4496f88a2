"""Alert delivery: channels (webhook, apprise, Alertmanager) and the outbox dispatcher."""

from consumers.alerts.deliver.alertmanager import AlertmanagerChannel
from consumers.alerts.deliver.apprise_channel import AppriseChannel
from consumers.alerts.deliver.base import Channel, DeliveryError
from consumers.alerts.deliver.dispatcher import Dispatcher, open_channels
from consumers.alerts.deliver.webhook import WebhookChannel, sign, verify_signature

__all__ = [
    "AlertmanagerChannel", "AppriseChannel", "Channel", "DeliveryError", "Dispatcher",
    "WebhookChannel", "open_channels", "sign", "verify_signature",
]
