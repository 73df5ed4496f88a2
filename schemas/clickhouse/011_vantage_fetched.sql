-- Issue 16: RIPE Atlas probe metadata is fetched automatically (scheduler ->
-- grenswacht.vantage-points.v1 -> consumers.vantage_points). fetched_at is when the probe API
-- answered (NULL for positions from configured files or geo lookups); computed_at stays the
-- row's version.
ALTER TABLE vantage_points ADD COLUMN IF NOT EXISTS fetched_at Nullable(DateTime64(3, 'UTC'));
