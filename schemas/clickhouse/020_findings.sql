-- Path-graph findings (issue 7): load balancers (diamonds), route changes, anycast front
-- doors and routes through the US, one row per conclusion per window with its evidence
-- (JSON). finding_id is a stable hash, so re-running a window replaces its rows (FINAL).
CREATE TABLE IF NOT EXISTS findings
(
    finding_id            String,
    kind                  LowCardinality(String),
    destination_address   String,
    subject               String,
    destination_name      String,
    applications          Array(String),
    vantage_keys          Array(String),
    window_start          DateTime64(3, 'UTC'),
    window_end            DateTime64(3, 'UTC'),
    confidence            LowCardinality(String),
    summary               String,
    evidence              String CODEC(ZSTD(3)),
    detected_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(detected_at)
ORDER BY (kind, destination_address, window_start, finding_id)
SETTINGS non_replicated_deduplication_window = 10000;
