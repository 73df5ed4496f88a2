-- Alerts (issue 8): one row per alert, replaced by its newer versions (ReplacingMergeTree on
-- updated_at; read with FINAL). `alert` keeps the full wire JSON (schemas/alerts.py), the
-- other columns are there for SQL and the Grafana dashboard.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id              String,
    version               UInt32,
    application           String,
    vantage_set           LowCardinality(String),
    address_family        UInt8,
    municipalities        Array(String),
    criticality           LowCardinality(String),
    severity              LowCardinality(String),
    state                 LowCardinality(String),
    first_seen            DateTime64(3, 'UTC'),
    last_seen             DateTime64(3, 'UTC'),
    resolved_at           Nullable(DateTime64(3, 'UTC')),
    before_physical       Array(String),
    before_legal          Array(String),
    before_verdict        LowCardinality(String),
    after_physical        Array(String),
    after_legal           Array(String),
    after_verdict         LowCardinality(String),
    added                 Array(String),
    flaps                 UInt32,
    summary               String,
    evidence              String CODEC(ZSTD(3)),
    alert                 String CODEC(ZSTD(3)),
    updated_at            DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY alert_id;

-- `grenswacht alerts ack`: who acknowledged an alert, when, and why.
CREATE TABLE IF NOT EXISTS alert_acks
(
    alert_id              String,
    acknowledged_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    acknowledged_by       String,
    comment               String
)
ENGINE = ReplacingMergeTree(acknowledged_at)
ORDER BY alert_id;

-- The delivery outbox: one row per (alert version, channel); pending until the receiver
-- acknowledged it (2xx). A restart resumes from here: nothing lost, nothing sent twice.
CREATE TABLE IF NOT EXISTS alert_deliveries
(
    alert_id              String,
    version               UInt32,
    channel               String,
    event                 LowCardinality(String),
    status                LowCardinality(String),
    attempts              UInt32,
    next_attempt_at       DateTime64(3, 'UTC'),
    last_error            String,
    created_at            DateTime64(3, 'UTC'),
    delivered_at          Nullable(DateTime64(3, 'UTC')),
    payload               String CODEC(ZSTD(3)),
    updated_at            DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (alert_id, version, channel);

-- The change detector's state per (application, vantage set, address family), saved before
-- the results offsets are committed, so a restart continues where it stopped.
CREATE TABLE IF NOT EXISTS alert_detector_state
(
    state_key             String,
    state                 String CODEC(ZSTD(3)),
    updated_at            DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY state_key;
