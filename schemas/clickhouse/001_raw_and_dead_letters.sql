-- Raw results exactly as received (payload verbatim), so normalisation can be replayed.
-- Natural key: one RIPE Atlas result per (source, msm_id, prb_id, timestamp, type, target).
CREATE TABLE IF NOT EXISTS raw_results
(
    source                LowCardinality(String),
    result_type           LowCardinality(String),
    measurement_id        UInt64,
    probe_id              UInt64,
    timestamp             DateTime64(3, 'UTC'),
    destination           String,
    vantage_point         String,
    firmware              UInt32,
    payload               String CODEC(ZSTD(3)),
    ingested_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (source, result_type, measurement_id, probe_id, timestamp, destination)
SETTINGS non_replicated_deduplication_window = 10000;

-- Anything that could not be ingested, with the reason and the bytes as received.
CREATE TABLE IF NOT EXISTS dead_letters
(
    received_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    source                LowCardinality(String),
    origin                String,
    topic                 String,
    partition             Int32,
    offset                Int64,
    reason                LowCardinality(String),
    detail                String,
    payload_size          UInt64,
    payload_sha256        FixedString(64),
    payload               String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (source, origin, reason, payload_sha256)
SETTINGS non_replicated_deduplication_window = 10000;
