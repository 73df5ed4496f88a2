"""Topic names, message keys and codecs: the wire contract between components.

Names carry a version suffix; a breaking change to a payload gets a new topic name so old
and new consumers can run side by side during an upgrade.

| topic | key | value |
|---|---|---|
| ``grenswacht.results.v1`` | measured target (``dst_name``, else ``dst_addr``) | one RIPE |
| | | Atlas result JSON object, bytes as received (``type: mda`` for MDA) |
| ``grenswacht.probe-tasks.v1`` | vantage point name | :class:`schemas.tasks.ProbeTask` JSON |
| ``grenswacht.findings.v1`` | application or destination | :class:`schemas.models.Finding` JSON |
| ``grenswacht.verdicts.v1`` | measured target | :class:`schemas.verdicts.VerdictMessage` JSON: |
| | | the path verdicts of one analysed window (``docs/verdicts.md``) |
| ``grenswacht.alerts.v1`` | application | :class:`schemas.models.Alert` JSON |
| ``grenswacht.dead-letters.v1`` | original topic | :class:`schemas.models.DeadLetter` JSON |
| ``grenswacht.vantage-points.v1`` | probe id | :class:`schemas.vantage.AtlasProbeMetadata` |
| ``grenswacht.confirm-requests.v1`` | hop address | :class:`schemas.confirm.ConfirmationRequest` |

Results are keyed by target so that one partition sees every result for a target (the
graph and alert consumers rely on that ordering).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

RESULTS = "grenswacht.results.v1"
PROBE_TASKS = "grenswacht.probe-tasks.v1"
FINDINGS = "grenswacht.findings.v1"
VERDICTS = "grenswacht.verdicts.v1"
ALERTS = "grenswacht.alerts.v1"
DEAD_LETTERS = "grenswacht.dead-letters.v1"
VANTAGE_POINTS = "grenswacht.vantage-points.v1"
CONFIRM_REQUESTS = "grenswacht.confirm-requests.v1"

ALL_TOPICS = (
    RESULTS, PROBE_TASKS, FINDINGS, VERDICTS, ALERTS, DEAD_LETTERS, VANTAGE_POINTS,
    CONFIRM_REQUESTS,
)
OUTPUT_TOPICS = (
    FINDINGS, ALERTS, DEAD_LETTERS, PROBE_TASKS, VANTAGE_POINTS, CONFIRM_REQUESTS
)
"""Topics whose readers may not run in this process (dashboards, other services, a probe
agent elsewhere, the scheduler's confirm job without an Atlas key): on the in-process memory
bus nobody may ever read them, so while no group reads one it keeps only recent history.
The results topic is not one of them: unread results are never dropped."""

# Header names used on every topic (values are UTF-8 bytes).
HEADER_SOURCE = "gw-source"  # "atlas" | "probe" | "file" | "scheduler" | "analysis"
HEADER_ORIGIN = "gw-origin"  # free text: file:line, stream id, vantage point

MAX_MESSAGE_BYTES = 1_000_000
"""Largest message accepted on any topic (Kafka's default ``message.max.bytes`` is ~1 MB)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    compacted: bool = False


DEFAULT_TOPIC_SPECS = (
    TopicSpec(RESULTS, partitions=6, retention_ms=7 * 24 * 3600 * 1000),
    TopicSpec(PROBE_TASKS, partitions=3, retention_ms=24 * 3600 * 1000),
    TopicSpec(FINDINGS, partitions=3, retention_ms=30 * 24 * 3600 * 1000),
    TopicSpec(VERDICTS, partitions=3, retention_ms=7 * 24 * 3600 * 1000),
    TopicSpec(ALERTS, partitions=1, retention_ms=90 * 24 * 3600 * 1000),
    TopicSpec(DEAD_LETTERS, partitions=1, retention_ms=30 * 24 * 3600 * 1000),
    TopicSpec(VANTAGE_POINTS, partitions=1, retention_ms=30 * 24 * 3600 * 1000),
    TopicSpec(CONFIRM_REQUESTS, partitions=1, retention_ms=7 * 24 * 3600 * 1000),
)


def result_key(result: dict[str, Any]) -> bytes:
    """Message key for a result: the measured target, so one partition sees a target."""
    target = result.get("dst_name") or result.get("dst_addr") or result.get("addr") or ""
    return str(target).encode()


def encode_json(value: Any) -> bytes:
    return orjson.dumps(value)


def decode_json(data: bytes) -> Any:
    return orjson.loads(data)


def dead_letter_record(
    topic: str, partition: int, offset: int, value: bytes, source: str, origin: str,
    reason: str, detail: str,
) -> dict[str, Any]:
    """A dead letter as published on :data:`DEAD_LETTERS` (the columns of the
    ``dead_letters`` table), for producers that cannot store it themselves."""
    return {
        "source": source, "origin": origin, "topic": topic, "partition": partition,
        "offset": offset, "reason": reason, "detail": detail[:2000],
        "payload_size": len(value), "payload_sha256": hashlib.sha256(value).hexdigest(),
        "payload": value[:MAX_MESSAGE_BYTES].decode("utf-8", "replace"),
    }
