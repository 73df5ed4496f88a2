-- Jurisdiction (issue 6): where vantage points are, and the verdicts per hop reply, per
-- forward path and per application, each with its evidence (JSON) and the version of every
-- dataset that produced it. Recomputable from traceroute_hops: a newer computed_at replaces
-- the older row with the same key (ReplacingMergeTree; read with FINAL).
CREATE TABLE IF NOT EXISTS vantage_points
(
    vantage_key           String,
    latitude              Float64,
    longitude             Float64,
    uncertainty_km        Float64,
    country               LowCardinality(String),
    basis                 String,
    confidence            LowCardinality(String),
    computed_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY vantage_key;

CREATE TABLE IF NOT EXISTS hop_verdicts
(
    source                LowCardinality(String),
    measurement_id        UInt64,
    probe_id              UInt64,
    timestamp             DateTime64(3, 'UTC'),
    destination_address   String,
    hop                   UInt8,
    reply_address         String,
    vantage_key           String,
    rtt_ms                Nullable(Float64),
    physical_country      LowCardinality(String),
    physical_confidence   LowCardinality(String),
    us_possible           Nullable(Bool),
    bound_km              Nullable(Float64),
    us_distance_km        Nullable(Float64),
    has_correction        Bool,
    corrections           Array(String),
    legal_operator        String,
    legal_parent          String,
    legal_country         LowCardinality(String),
    legal_confidence      LowCardinality(String),
    cloud_act             Bool,
    asn                   Nullable(UInt32),
    as_name               String,
    evidence              String CODEC(ZSTD(3)),
    dataset_versions      Map(String, String),
    computed_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (source, measurement_id, probe_id, timestamp, destination_address, hop, reply_address);

CREATE TABLE IF NOT EXISTS path_verdicts
(
    source                LowCardinality(String),
    measurement_id        UInt64,
    probe_id              UInt64,
    timestamp             DateTime64(3, 'UTC'),
    destination_address   String,
    destination_name      String,
    vantage_key           String,
    verdict               LowCardinality(String),
    confidence            LowCardinality(String),
    destination_country   LowCardinality(String),
    destination_operator  String,
    legal_country         LowCardinality(String),
    us_hops               Array(String),
    correction_count      UInt32,
    reasons               Array(String),
    evidence              String CODEC(ZSTD(3)),
    dataset_versions      Map(String, String),
    computed_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (source, measurement_id, probe_id, timestamp, destination_address);

CREATE TABLE IF NOT EXISTS application_verdicts
(
    application           String,
    window_start          DateTime64(3, 'UTC'),
    window_end            DateTime64(3, 'UTC'),
    verdict               LowCardinality(String),
    path_count            UInt32,
    class_counts          Map(String, UInt32),
    hostnames             Array(String),
    addresses             Array(String),
    reasons               Array(String),
    dataset_versions      Map(String, String),
    computed_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (application, window_start, window_end);
