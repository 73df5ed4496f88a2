-- The application inventory as last loaded (apps.toml / apps.csv), so verdicts and alerts can
-- be grouped by municipality in SQL and in the Grafana dashboard (helm/grenswacht/dashboards).
-- One row per application; a newer loaded_at replaces the older row (read with FINAL).
CREATE TABLE IF NOT EXISTS applications
(
    application           String,
    municipalities        Array(String),
    hostnames             Array(String),
    criticality           LowCardinality(String),
    tags                  Array(String),
    loaded_at             DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY application;
