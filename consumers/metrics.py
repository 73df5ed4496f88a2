"""Prometheus metrics of the consumers (names and labels: docs/deploy.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RESULTS_INGESTED = Counter(
    "grenswacht_results_ingested", "Results written to ClickHouse.", ["source", "type"]
)
DEAD_LETTERS = Counter(
    "grenswacht_dead_letters", "Inputs sent to the dead-letter topic/table.", ["reason"]
)
CONSUMER_LAG = Gauge(
    "grenswacht_consumer_lag", "Messages behind the end of the partition.",
    ["topic", "partition", "group"],
)
FLUSH_SECONDS = Histogram(
    "grenswacht_flush_seconds", "Time of one sink flush (insert + commit).", ["table"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
VALUES_NULLED = Counter(
    "grenswacht_values_nulled", "Optional values nulled because they do not fit their column.",
    ["field"],
)
INGEST_WAITING = Gauge(
    "grenswacht_ingest_waiting",
    "1 while the ingest consumer waits for storage (backpressure: down, full, overloaded).",
    ["group"],
)
INGEST_RETRIES = Counter(
    "grenswacht_ingest_retries", "Flushes retried because storage pushed back.", ["group"],
)
FINDINGS = Counter(
    "grenswacht_findings", "Findings of the path graph (load balancer, anycast, US transit).",
    ["detector"],
)
ALERTS_DELIVERED = Counter("grenswacht_alerts_delivered", "Alerts delivered.", ["receiver"])
ALERTS_FAILED = Counter(
    "grenswacht_alerts_failed", "Alert deliveries that failed (and are retried).", ["receiver"]
)
