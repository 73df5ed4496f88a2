-- ClickHouse explodes traceroutes into traceroute_hops (issue 17): the ingest sink sends each
-- traceroute that schemas/explode.py accepted as one JSON line (JSONEachRow): its payload as
-- received, with the envelope the normaliser derived put in front ("envelope": [...]).
-- Nothing is stored here (Null engine); the materialized view below turns every line into
-- one row per reply, equal to schemas/normalize.py's rows (tests/schemas/test_explode.py
-- compares them row for row over the whole corpus). Only the keys named here are read:
-- every other key of the payload is skipped (input_format_skip_unknown_fields).
CREATE TABLE IF NOT EXISTS traceroute_input
(
    -- (source, measurement_id, probe_id, timestamp in seconds, vantage_point,
    -- address_family, protocol, paris_id, firmware, destination_address, destination_name,
    -- source_address, probe_public_address): a JSON array, so an unnamed tuple
    envelope Tuple(String, UInt64, UInt64, UInt32, String, UInt8, String, Nullable(UInt16),
                   UInt32, String, String, String, String),
    result Array(Tuple(
        hop Nullable(Int64),
        error Nullable(String),
        result Array(Tuple(
            `from` Nullable(String), rtt Nullable(Float64), size Nullable(Int64),
            ttl Nullable(Int64), ittl Nullable(Int64), late Nullable(Int64),
            dup Nullable(Bool), edst Nullable(String), err Nullable(String),
            mtu Nullable(Int64), icmpext Nullable(String)))))
)
ENGINE = Null;

-- One row per reply; a hop without replies (only an "error") is one row, reply_index 0.
-- Integers arrive as Int64 and are narrowed with accurateCast, which refuses a value that
-- does not fit (a plain cast would wrap 2^40 to 0): schemas/explode.py never sends one,
-- and should it ever, the insert fails and the sink normalises that result in Python.
-- icmpext arrives as its raw text (input_format_json_read_objects_as_strings), which
-- schemas/explode.py checked to be what the normaliser writes (compact, as orjson does).
CREATE MATERIALIZED VIEW IF NOT EXISTS traceroute_explode TO traceroute_hops AS
SELECT
    envelope.1 AS source,
    envelope.2 AS measurement_id,
    envelope.3 AS probe_id,
    toDateTime64(envelope.4, 3, 'UTC') AS timestamp,
    envelope.5 AS vantage_point,
    envelope.6 AS address_family,
    envelope.7 AS protocol,
    envelope.8 AS paris_id,
    envelope.9 AS firmware,
    envelope.10 AS destination_address,
    envelope.11 AS destination_name,
    envelope.12 AS source_address,
    envelope.13 AS probe_public_address,
    accurateCast(ifNull(hop_.hop, 0), 'UInt8') AS hop,
    ifNull(hop_.error, '') AS hop_error,
    toUInt8(if(reply_number = 0, 0, reply_number - 1)) AS reply_index,
    ifNull(reply_.`from`, '') AS reply_address,
    reply_number != 0 AND isNull(reply_.`from`) AND isNull(reply_.rtt) AS is_timeout,
    reply_.rtt AS rtt_ms,
    accurateCast(reply_.size, 'Nullable(UInt32)') AS size,
    accurateCast(reply_.ttl, 'Nullable(UInt16)') AS reply_ttl,
    accurateCast(reply_.ittl, 'Nullable(UInt16)') AS inner_ttl,
    accurateCast(ifNull(reply_.late, 0), 'UInt16') AS late_by,
    ifNull(reply_.dup, false) AS is_duplicate,
    ifNull(reply_.edst, '') AS different_destination,
    substringUTF8(ifNull(reply_.err, ''), 1, 32) AS reply_error,
    accurateCast(reply_.mtu, 'Nullable(UInt32)') AS mtu,
    if(isNull(reply_.icmpext), CAST([], 'Array(UInt32)'), arrayMap(
        label -> assumeNotNull(label),
        arrayFilter(label -> isNotNull(label), arrayFlatten(arrayMap(
            object -> arrayMap(entry -> entry.label, object.mpls),
            JSONExtract(assumeNotNull(reply_.icmpext), 'obj',
                        'Array(Tuple(mpls Array(Tuple(label Nullable(UInt32)))))')))))
    ) AS mpls_labels,
    ifNull(reply_.icmpext, '') AS icmp_extensions
FROM traceroute_input
ARRAY JOIN result AS hop_
LEFT ARRAY JOIN hop_.result AS reply_, arrayEnumerate(hop_.result) AS reply_number;
