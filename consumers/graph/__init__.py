"""The path graph and its detectors: load balancers, anycast, routes through the US.

Built-in detectors are registered like extensions in :data:`DETECTORS`; each is
``detect(window) -> list[Finding]`` over a :class:`~consumers.graph.build.Window`.
:func:`run_window` is what a graph consumer calls after each enrichment window: read the
window from ClickHouse, run every detector, store and publish the findings.
See ``docs/graph.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from consumers.enrich import Enricher, VantageRegistry
from consumers.graph import anycast, load_balancer, us_transit
from consumers.graph.build import Window, build_graph
from consumers.graph.findings import publish_findings, read_findings, store_findings
from consumers.graph.window import read_window, window_from_rows
from schemas.bus import Bus
from schemas.findings import Finding

Detector = Callable[[Window], list[Finding]]
DETECTORS: tuple[Detector, ...] = (load_balancer.detect, anycast.detect, us_transit.detect)
BEFORE_HOP_VERDICTS: frozenset[Detector] = frozenset({anycast.detect})
"""Detectors that need only RTTs, positions and DNS (no ``window.evidence``): the analysis
runs them before the hop verdicts, because their findings shape them (anycast addresses
take no proof from other vantage points). The others read the hop verdicts."""

__all__ = [
    "BEFORE_HOP_VERDICTS", "DETECTORS", "Window", "anycast_addresses", "build_graph", "detect_all",
    "publish_findings", "read_findings", "read_window", "run_window", "store_findings",
    "window_from_rows",
]


def detect_all(window: Window, detectors: Sequence[Detector] = DETECTORS) -> list[Finding]:
    findings: list[Finding] = []
    for detector in detectors:
        findings.extend(detector(window))
    return findings


def anycast_addresses(findings: Sequence[Finding]) -> frozenset[str]:
    """Addresses proven anycast (high confidence: by physics, not resting on one vantage
    point's registered position): pass to ``consumers.enrich.window.hop_stage`` so they
    take no single-place proof and their paths carry the anycast flag."""
    return frozenset(f.subject for f in findings
                     if f.kind == "anycast" and f.confidence == "high")


def run_window(
    storage: Any,
    bus: Bus | None,
    start: dt.datetime,
    end: dt.datetime,
    applications: Mapping[str, Sequence[str]] | None = None,
    *,
    enricher: Enricher | None = None,
    registry: VantageRegistry | None = None,
) -> list[Finding]:
    """Read [start, end) from storage, run :data:`DETECTORS`, store the findings in the
    ``findings`` table and publish them on the findings topic (when ``bus`` is given).

    A stand-alone run of the detectors over stored hop verdicts; the analysis runs them
    inside its one pass per window (``consumers.pipeline.analyse_window``)."""
    window = read_window(storage, start, end, applications=applications, enricher=enricher,
                         registry=registry)
    findings = detect_all(window)
    store_findings(storage, findings)
    if bus is not None:
        publish_findings(bus, findings)
    return findings
