"""Prometheus metrics of the probe agent (names and labels: docs/deploy.md)."""

from __future__ import annotations

from prometheus_client import Counter

PROBES_RUN = Counter(
    "grenswacht_probes_run", "Self-hosted measurements run.", ["kind", "vantage_point", "outcome"]
)
