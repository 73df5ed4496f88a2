"""Raw RIPE Atlas traceroute results -> forward paths -> verdicts -> observations.

Uses the jurisdiction code (``consumers.enrich`` and ``consumers.verdicts``) unchanged. One
addition: a **proof cache**. An address that RTT physics proved not to be in the US (a fast
reply to a vantage point of the same vantage set) stays proven for ``PROOF_TTL_S`` of event
time, so a later *boomerang* path — out to the US and back to the same European
destination, whose long RTT alone would allow a US location — is classified as routed via
the US rather than hosted there. Proofs are kept per vantage set, so an anycast address seen
near a Dutch probe is never "proven" for a probe on another continent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from consumers.alerts.settings import AlertSettings
from consumers.alerts.state import Applications, Observation, observations
from consumers.enrich.hops import Enricher, HopVerdict
from consumers.enrich.vantage import VantageRegistry
from consumers.enrich.window import (
    PathResult,
    hop_verdicts_for_path,
    paths_from_rows,
    verdicts_for_path,
)
from schemas.errors import ResultError
from schemas.normalize import epoch_seconds, normalize

PROOF_TTL_S = 24 * 3600.0
MAX_PROOFS = 200_000


_epoch = epoch_seconds


class ResultAnalyzer:
    def __init__(self, enricher: Enricher, registry: VantageRegistry,
                 settings: AlertSettings) -> None:
        self.enricher = enricher
        self.registry = registry
        self.settings = settings
        self.proofs: dict[str, dict[str, tuple[HopVerdict, float]]] = {}
        self.skipped = 0

    def path_results(self, results: Iterable[tuple[dict[str, Any], str]]
                     ) -> tuple[list[PathResult], dict[tuple[str, int, int, int, str], int | None]]:
        """Verdicts for every traceroute in ``results`` ((result, source) pairs), and the
        flow id (paris_id) of each by natural key."""
        rows: list[dict[str, Any]] = []
        flows: dict[tuple[str, int, int, int, str], int | None] = {}
        for result, source in results:
            if not isinstance(result, dict) or result.get("type") != "traceroute":
                continue
            try:
                hop_rows = normalize(result, source=source).as_dicts("traceroute_hops")
            except ResultError:
                self.skipped += 1  # the ingest consumer dead-letters it
                continue
            for row in hop_rows:
                row["timestamp"] = _epoch(row["timestamp"])
                flows[(str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]),
                       row["timestamp"], str(row["destination_address"]))] = (
                    row.get("paris_id"))
            rows.extend(hop_rows)
        paths = paths_from_rows(rows)
        first = [(path, *hop_verdicts_for_path(path, self.enricher, self.registry))
                 for path in paths]
        for path, vantage, hops in first:
            bucket = self.proofs.setdefault(vantage.country if vantage else "", {})
            for hop in hops:
                if hop.physical.us_possible is not False:
                    continue
                known = bucket.get(hop.record.address)
                if known is None or (hop.record.rtt_ms or 0) <= (known[0].record.rtt_ms or 0):
                    bucket[hop.record.address] = (hop, float(path.timestamp))
        self._expire(max((p.timestamp for p in paths), default=0))
        out = []
        for path, vantage, _hops in first:
            bucket = self.proofs.get(vantage.country if vantage else "", {})
            proofs = {address: proof for address, (proof, _t) in bucket.items()}
            out.append(verdicts_for_path(path, self.enricher, self.registry, proofs=proofs))
        return out, flows

    def _expire(self, newest: float) -> None:
        for bucket in self.proofs.values():
            if len(bucket) > MAX_PROOFS:
                bucket.clear()
            for address in [a for a, (_p, t) in bucket.items() if newest - t > PROOF_TTL_S]:
                del bucket[address]

    def observe(self, results: Iterable[tuple[dict[str, Any], str]],
                applications: Applications) -> list[Observation]:
        path_results, flows = self.path_results(results)
        return observations(path_results, applications, flows, self.settings.granularity,
                            transit_legal=self.settings.transit_legal)
