"""run_window on a real chDB store and a memory bus; the CLI reads what it stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.graph import read_findings, run_window
from consumers.storage import Storage
from grenswacht.cli import app
from schemas import topics
from schemas.bus import open_bus
from schemas.findings import Finding
from schemas.normalize import TABLE_COLUMNS
from tests.enrich.conftest import PROBE_FILES
from tests.graph.conftest import ATLAS, EVERYTHING, GRAPH, normalized, read_lines


def ingest(storage: Storage, results: list[dict[str, Any]]) -> None:
    batch = normalized(results)
    for table, names in TABLE_COLUMNS.items():
        if batch.rows(table):
            storage.insert(table, dict(zip(names, batch.columns(table), strict=True)))


def test_run_window_stores_and_publishes(storage: Storage, chdb_dsn: str,
                                         tmp_path: Path) -> None:
    ingest(storage, list(read_lines(GRAPH / "menog_ae_two_series.jsonl.gz")))
    ingest(storage, list(read_lines(ATLAS / "traceroute" / "ripe_atlas_tools_tests.jsonl")))
    enricher, registry = open_enricher(JurisdictionSettings(atlas_probe_files=PROBE_FILES))
    bus = open_bus("memory://graph-test")
    bus.subscribe([topics.FINDINGS], "test")
    found = run_window(storage, bus, *EVERYTHING, {"speedtest": ["105.203.255.77"]},
                       enricher=enricher, registry=registry)
    kinds = {f.kind for f in found}
    assert {"load_balancer", "route_change", "us_transit"} <= kinds
    balancer = next(f for f in found if f.kind == "load_balancer")
    assert balancer.applications == ("speedtest",)
    messages = bus.poll(1000, timeout=1.0)
    assert sorted(Finding.from_bytes(m.value).finding_id for m in messages) == sorted(
        f.finding_id for f in found)
    # a replayed window replaces, it does not double
    run_window(storage, None, *EVERYTHING, enricher=enricher, registry=registry)
    stored = read_findings(storage)
    assert sorted(f.finding_id for f in stored) == sorted(f.finding_id for f in found)
    assert stored[0].evidence  # evidence JSON survives the round trip

    runner = CliRunner()
    listed = runner.invoke(app, ["findings", "--kind", "route_change", "--format", "json",
                                 "--storage", chdb_dsn])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert rows and {row["kind"] for row in rows} == {"route_change"}
    bad = runner.invoke(app, ["findings", "--kind", "nonsense", "--storage", chdb_dsn])
    assert bad.exit_code == 2

    svg, png, graphml = tmp_path / "g.svg", tmp_path / "g.png", tmp_path / "g.graphml"
    drawn = runner.invoke(app, ["graph", "105.203.255.77", "--svg", str(svg), "--png", str(png),
                                "--graphml", str(graphml), "--storage", chdb_dsn])
    assert drawn.exit_code == 0, drawn.output
    text = svg.read_text()
    assert text.startswith("<svg") and "77.67.76.41" in text and "Forward paths only" in text
    assert "load balancer: 2 next hops" in text  # the detector's finding, drawn
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "213.200.126.145" in graphml.read_text()
    dutch = runner.invoke(app, ["graph", "105.203.255.77", "--svg", str(svg), "--lang", "nl",
                                "--storage", chdb_dsn])
    assert dutch.exit_code == 0 and "Alleen heenpaden" in svg.read_text()
    assert runner.invoke(app, ["graph", "105.203.255.77", "--svg", str(svg), "--lang", "de",
                               "--storage", chdb_dsn]).exit_code != 0
