"""Findings out: the ``findings`` table and the findings topic.

:func:`store_findings` inserts one row per finding (``finding_id`` is stable, so a replayed
window replaces its rows: ReplacingMergeTree, read with FINAL; the insert carries a
deduplication token of their content: ids alone would drop a finding whose evidence
changed as a duplicate of its earlier version). :func:`publish_findings` puts each finding on
:data:`schemas.topics.FINDINGS`, keyed by application (else destination), and flushes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from schemas import topics
from schemas.bus import Bus
from schemas.findings import Finding

COLUMNS = (
    "finding_id", "kind", "destination_address", "subject", "destination_name",
    "applications", "vantage_keys", "window_start", "window_end", "confidence", "summary",
    "evidence", "detected_at",
)


class _Storage(Protocol):
    def insert(self, table: str, columns: Mapping[str, Sequence[Any]], *,
               dedup_token: str | None = None) -> int: ...

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any: ...


def store_findings(storage: _Storage, findings: Sequence[Finding],
                   detected_at: dt.datetime | None = None) -> int:
    if not findings:
        return 0
    now = detected_at or dt.datetime.now(dt.UTC)
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for finding in findings:
        values = (
            finding.finding_id, finding.kind, finding.destination_address, finding.subject,
            finding.destination_name, list(finding.applications), list(finding.vantage_keys),
            finding.window_start, finding.window_end, finding.confidence, finding.summary,
            json.dumps(finding.evidence, sort_keys=True, default=str), now,
        )
        for name, value in zip(COLUMNS, values, strict=True):
            columns[name].append(value)
    stored = [values[:-1] for values in zip(*columns.values(), strict=True)]  # not detected_at
    token = hashlib.sha256(json.dumps(stored, sort_keys=True, default=str).encode()).hexdigest()
    return storage.insert("findings", columns, dedup_token=token)


def publish_findings(bus: Bus, findings: Sequence[Finding]) -> int:
    for finding in findings:
        bus.publish(topics.FINDINGS, finding.to_bytes(), key=finding.key(),
                    headers=[(topics.HEADER_SOURCE, b"graph")])
    if findings:
        bus.flush()
    return len(findings)


_READ_SQL = """
SELECT finding_id, kind, destination_address, subject, destination_name, applications,
       vantage_keys, window_start, window_end, confidence, summary, evidence
FROM findings FINAL
WHERE (empty({kinds:Array(String)}) OR kind IN {kinds:Array(String)})
  AND ({subject:String} = '' OR subject = {subject:String})
ORDER BY window_end DESC, kind, destination_address, subject
LIMIT {limit:UInt32}
"""


def read_findings(storage: _Storage, kinds: Sequence[str] = (),
                  limit: int = 1000, subject: str = "") -> list[Finding]:
    """Stored findings, newest window first (only those about ``subject`` if given)."""
    rows = storage.query(_READ_SQL, {"kinds": list(kinds), "limit": limit,
                                     "subject": subject}).as_dicts()
    out = []
    for row in rows:
        row["evidence"] = json.loads(row["evidence"] or "{}")
        for name in ("window_start", "window_end"):
            if row[name].tzinfo is None:
                row[name] = row[name].replace(tzinfo=dt.UTC)
        out.append(Finding.model_validate(row))
    return out
