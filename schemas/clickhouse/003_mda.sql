-- MDA (load-balancer discovery) results of self-hosted probes: one row per link between an
-- interface at ttl and one at ttl + 1 (address '' = did not answer), with the flow ids that
-- revealed it; the result's header repeats on every row (see schemas/jsonschema/mda.schema.json).
CREATE TABLE IF NOT EXISTS mda_links
(
    source                LowCardinality(String),
    measurement_id        UInt64,
    probe_id              UInt64,
    timestamp             DateTime64(3, 'UTC'),
    vantage_point         String,
    address_family        UInt8,
    protocol              LowCardinality(String),
    firmware              UInt32,
    destination_address   String,
    destination_name      String,
    source_address        String,
    confidence            Float32,
    probes_sent           UInt32,
    complete              Bool,
    ttl                   UInt8,
    link_index            UInt32,
    near_address          String,
    far_address           String,
    flow_ids              Array(UInt32)
)
ENGINE = ReplacingMergeTree
ORDER BY (source, measurement_id, probe_id, timestamp, destination_address, ttl, link_index)
SETTINGS non_replicated_deduplication_window = 10000;
