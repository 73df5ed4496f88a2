"""Prometheus metrics of the scheduler (names and labels: docs/deploy.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CREDITS_PLANNED = Gauge(
    "grenswacht_atlas_credits_planned", "RIPE Atlas credits the current plan costs per day."
)
CREDITS_SPENT = Counter(
    "grenswacht_atlas_credits_spent", "RIPE Atlas credits spent on measurements created."
)
PROBE_TASKS_PUBLISHED = Counter(
    "grenswacht_probe_tasks_published", "Probe tasks published for self-hosted vantage sets."
)
