-- The application verdict from the municipality's own vantage points (issue 14,
-- docs/verdicts.md). Path verdicts say which home set measured them ('' = a reference
-- vantage point), whether the destination is anycast (a flag, not a class: rows of older
-- stores with verdict 'anycast' read as 'unknown'), the flow id, the kind of result
-- (traceroute, or mda: one path over every branch), the applications the path belongs to
-- (by that vantage point's own DNS answers or the traceroute's target name), one line of why,
-- the destination's RTT (the physics behind the why)
-- and the pipeline version that wrote them (older rows are re-analysed).
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS home_set LowCardinality(String) DEFAULT '';
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS anycast Bool DEFAULT false;
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS flow_id Nullable(UInt32);
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS kind LowCardinality(String) DEFAULT 'traceroute';
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS applications Array(String);
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS why String DEFAULT '';
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS destination_rtt_ms Nullable(Float64);
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS pipeline UInt16 DEFAULT 0;

-- One row per application per analysed window that had home paths for it: the state over
-- the period (period_start, period_end], period_end = its latest home measurement. Windows
-- without home measurements for an application write nothing for it.
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS confidence LowCardinality(String) DEFAULT 'none';
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS period_start DateTime64(3, 'UTC') DEFAULT window_start;
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS period_end DateTime64(3, 'UTC') DEFAULT window_end;
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS shares Map(String, Float64);
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS worst_branch LowCardinality(String) DEFAULT '';
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS home_sets Array(String);
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS vantage_points Array(String);
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS anycast Bool DEFAULT false;
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS why String DEFAULT '';
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS outliers Array(String);
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS cname_chains Array(String);
ALTER TABLE application_verdicts ADD COLUMN IF NOT EXISTS providers Array(String);

-- The current state: per application its latest row (by period_end) written from home
-- paths. Rows of older stores (no home set: "every probe anywhere", and 'unknown' rows of
-- windows without a measurement) are not current state. The CLI (`grenswacht apps`), the
-- Grafana panel and the UI read this view.
CREATE VIEW IF NOT EXISTS application_current AS
SELECT application, verdict, confidence, shares, class_counts, path_count, worst_branch,
       anycast, home_sets, vantage_points, period_start, period_end, why, reasons, outliers,
       hostnames, addresses, cname_chains, providers, dataset_versions, window_start,
       window_end, computed_at
FROM application_verdicts FINAL
WHERE notEmpty(home_sets)
ORDER BY application, period_end DESC, window_end DESC, computed_at DESC
LIMIT 1 BY application;
