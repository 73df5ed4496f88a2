-- Issue 17: per-reply physics as one vectorised comparison in ClickHouse. us_distance_km is
-- the lower bound (km) on the distance from anywhere the vantage point may be to any US
-- territory (consumers.enrich.physics.vantage_us_distance_km, computed by the analysis once
-- per vantage position); a reply within rtt_ms * 100 km of the vantage point
-- (consumers.enrich.physics.KM_PER_MS_RTT) is provably not from the US when that bound is
-- smaller than us_distance_km. NULL in rows written before this migration.
ALTER TABLE vantage_points ADD COLUMN IF NOT EXISTS us_distance_km Nullable(Float64);

-- Every answered reply with that comparison made by ClickHouse: the same us_possible as the
-- reply's own bound in hop_verdicts (tests/enrich/test_reply_physics.py compares them). The
-- vantage point's latest row is used (GLOBAL: on a cluster the vantage rows are read once).
CREATE VIEW IF NOT EXISTS reply_physics AS
SELECT h.source AS source, h.measurement_id AS measurement_id, h.probe_id AS probe_id,
       h.timestamp AS timestamp, h.destination_address AS destination_address, h.hop AS hop,
       h.reply_index AS reply_index, h.reply_address AS reply_address, h.rtt_ms AS rtt_ms,
       v.vantage_key AS vantage_key, v.us_distance_km AS us_distance_km,
       greatest(h.rtt_ms, 0) * 100 AS bound_km,
       bound_km >= v.us_distance_km AS us_possible
FROM traceroute_hops AS h
GLOBAL INNER JOIN (
    SELECT vantage_key, argMax(us_distance_km, computed_at) AS us_distance_km
    FROM vantage_points GROUP BY vantage_key HAVING us_distance_km IS NOT NULL
) AS v
ON v.vantage_key = if(h.vantage_point != '', concat('vp:', h.vantage_point),
                      concat('atlas:', toString(h.probe_id)))
WHERE NOT h.is_timeout AND h.rtt_ms IS NOT NULL;
