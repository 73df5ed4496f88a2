"""Everything downstream of the results topic: ingest, enrich, graph, verdicts, alerts,
and storage (the only module that imports clickhouse-connect)."""
