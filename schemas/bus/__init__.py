"""Pick a bus transport from a URL: ``memory://NAME`` or ``kafka://host:port[,host:port]``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from schemas.bus.base import Bus, Message, TopicPartition, next_offsets
from schemas.errors import ConfigError

__all__ = ["Bus", "Message", "TopicPartition", "next_offsets", "open_bus"]


def open_bus(url: str, **options: Any) -> Bus:
    """Open the bus named by ``url``. ``options`` go to the transport (Kafka: security
    settings, client id, topic specs)."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from schemas.bus.memory import MemoryBus, broker_for

        return MemoryBus(broker_for(urlsplit(url).netloc or urlsplit(url).path.strip("/")))
    if scheme == "kafka":
        from schemas.bus.kafka import open_kafka_bus

        return open_kafka_bus(url, **options)
    raise ConfigError(f"unknown bus URL {url!r}: use memory://NAME or kafka://host:port")
