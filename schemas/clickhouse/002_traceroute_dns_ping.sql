-- One row per traceroute reply, timeouts ("*") included (reply_address = '').
CREATE TABLE IF NOT EXISTS traceroute_hops
(
    source                LowCardinality(String),
    measurement_id        UInt64,
    probe_id              UInt64,
    timestamp             DateTime64(3, 'UTC'),
    vantage_point         String,
    address_family        UInt8,
    protocol              LowCardinality(String),
    paris_id              Nullable(UInt16),
    firmware              UInt32,
    destination_address   String,
    destination_name      String,
    source_address        String,
    probe_public_address  String,
    hop                   UInt8,
    hop_error             String,
    reply_index           UInt8,
    reply_address         String,
    is_timeout            Bool,
    rtt_ms                Nullable(Float64),
    size                  Nullable(UInt32),
    reply_ttl             Nullable(UInt16),
    inner_ttl             Nullable(UInt16),
    late_by               UInt16,
    is_duplicate          Bool,
    different_destination String,
    reply_error           LowCardinality(String),
    mtu                   Nullable(UInt32),
    mpls_labels           Array(UInt32),
    icmp_extensions       String
)
ENGINE = ReplacingMergeTree
ORDER BY (source, measurement_id, probe_id, timestamp, destination_address, hop, reply_index)
SETTINGS non_replicated_deduplication_window = 10000;

-- One row per DNS answer record (CNAME hops included) per response; a response with no
-- answer records keeps one row with record_type = '' so its rcode is not lost.
CREATE TABLE IF NOT EXISTS dns_answers
(
    source                LowCardinality(String),
    measurement_id        UInt64,
    probe_id              UInt64,
    timestamp             DateTime64(3, 'UTC'),
    vantage_point         String,
    address_family        UInt8,
    protocol              LowCardinality(String),
    firmware              UInt32,
    response_index        UInt16,
    resolver_address      String,
    query_name            String,
    query_class           LowCardinality(String),
    query_type            LowCardinality(String),
    rcode                 LowCardinality(String),
    response_time_ms      Nullable(Float64),
    response_error        String,
    nsid                  String,
    section               LowCardinality(String),
    record_index          UInt16,
    record_name           String,
    record_type           LowCardinality(String),
    record_ttl            Nullable(UInt32),
    record_data           String
)
ENGINE = ReplacingMergeTree
ORDER BY (source, measurement_id, probe_id, timestamp, response_index, section, record_index)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ping_results
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
    packets_sent          UInt32,
    packets_received      UInt32,
    duplicates            UInt32,
    rtt_min_ms            Nullable(Float64),
    rtt_avg_ms            Nullable(Float64),
    rtt_max_ms            Nullable(Float64),
    size                  Nullable(UInt32)
)
ENGINE = ReplacingMergeTree
ORDER BY (source, measurement_id, probe_id, timestamp, destination_address)
SETTINGS non_replicated_deduplication_window = 10000;
