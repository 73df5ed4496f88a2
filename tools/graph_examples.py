"""Regenerate the path pictures in docs/ from the bundled real RIPE Atlas results.

    .venv/bin/python tools/graph_examples.py [--png DIR]

* ``docs/graph_example.svg``: probe 3029 -> 105.203.255.77 (menog, Feb 2020), the
  per-flow diamond after 77.67.76.41 (GTT) through the US.
* ``docs/graph_example_cdn.svg``: www.reuters.com from 29 probes (Sep 2024, CloudFront),
  1,317 nodes in the path graph: the CDN case of issue 15.

``--png DIR`` also writes both as PNG into DIR (to look at them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.graph import load_balancer
from consumers.graph.build import Window, build_graph
from consumers.graph.draw import write_png, write_svg
from consumers.graph.window import window_from_rows
from schemas.errors import ResultError
from schemas.normalize import RowBatch, normalize_into

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PROBES = sorted((FIXTURES / "atlas" / "api").glob("pierky_*_probes_api_v2.json"))
EVERYTHING = (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
EXAMPLES = {
    "graph_example": (FIXTURES / "graph" / "menog_ae_two_series.jsonl.gz", "105.203.255.77",
                      "RIPE Atlas probe 3029 -> 105.203.255.77 (menog, Feb 2020)"),
    "graph_example_cdn": (FIXTURES / "graph" / "news_reuters_cdn.jsonl.gz", "",
                          "www.reuters.com from 29 RIPE Atlas probes (CloudFront, Sep 2024)"),
}


def window(path: Path, destination: str) -> Window:
    batch = RowBatch()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            result: dict[str, Any] = json.loads(line)
            if destination and result.get("dst_addr") != destination:
                continue
            try:
                normalize_into(result, batch, source="file")
            except ResultError:
                continue
    enricher, registry = open_enricher(JurisdictionSettings(atlas_probe_files=PROBES))
    return window_from_rows(*EVERYTHING, batch.as_dicts("traceroute_hops"),
                            enricher=enricher, registry=registry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, help="also write PNGs into this folder")
    arguments = parser.parse_args()
    for name, (path, destination, title) in EXAMPLES.items():
        found = window(path, destination)
        options: dict[str, Any] = {
            "title": f"{title}: {len(found.traces)} traceroutes",
            "findings": load_balancer.detect(found), "vantages": found.vantages}
        graph = (found.graph(destination) if destination else
                 build_graph(found.traces, found.mdas, found.address_evidence()))
        write_svg(graph, ROOT / "docs" / f"{name}.svg", id_prefix=name, **options)
        if arguments.png:
            write_png(graph, arguments.png / f"{name}.png", **options)


if __name__ == "__main__":
    main()
