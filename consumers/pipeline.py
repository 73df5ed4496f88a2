"""One analysis pass per window: rows in, every verdict table written once, the verdicts
published (``docs/verdicts.md``, ``docs/architecture.md``).

1. read the window's rows once (``traceroute_hops``, ``mda_links``, ``dns_answers``; DNS
   answers of the application hostnames over the period before it; ``vantage_points``);
2. the detectors that need no hop verdicts (anycast: RTT discs and DNS site names,
   :data:`consumers.graph.BEFORE_HOP_VERDICTS`);
3. **hop verdicts once** (:func:`consumers.enrich.window.hop_stage`), with every proof the
   window holds; anycast addresses are placed by each path's own RTT;
4. the other detectors on those in-memory hop verdicts (load balancers, US transit);
5. path verdicts (:func:`consumers.enrich.window.classify_stage`) with the anycast flag and
   the operator the CNAME chain names; each path gets its home set and applications;
6. write ``vantage_points``, ``hop_verdicts``, ``path_verdicts``, ``findings``;
7. application verdicts from the stored home paths of each application's period, for the
   applications this window measured from home (``consumers.applications``);
8. publish findings and :class:`schemas.verdicts.VerdictMessage` s; then the registered
   :data:`WINDOW_STEPS` (hooks that act on the path verdicts, e.g. confirmation requests).

:func:`analyse_rows` (steps 2-5) is pure; :func:`analyse_window` does the I/O. Analysing a
window again replaces its rows (ReplacingMergeTree on ``computed_at`` / ``detected_at``).
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.addresses import AddressMap
from consumers.applications import ApplicationVerdict, Branch, HomePath, classify_application
from consumers.claim_tables import prime_enricher
from consumers.confirm import ConfirmationTracker, HopObservation
from consumers.enrich.cname import Resolution, SuffixTable, default_suffixes, resolutions
from consumers.enrich.hops import Enricher
from consumers.enrich.vantage import Vantage, VantageRegistry
from consumers.enrich.window import (
    PathResult,
    Resolver,
    classify_stage,
    hop_stage,
    paths_from_mda_rows,
    paths_from_rows,
    ping_observations,
)
from consumers.graph import BEFORE_HOP_VERDICTS, DETECTORS, anycast_addresses, detect_all
from consumers.graph.findings import publish_findings, store_findings
from consumers.graph.window import (
    evidence_from_stages,
    locate,
    read_path_rows,
    window_from_rows,
)
from consumers.home import VerdictSettings, home_set
from consumers.vantage_points import refresh_registry
from consumers.verdict_tables import (
    DNS_SQL,
    application_columns,
    hop_columns,
    path_columns,
    read_home_paths,
    read_us_branches,
    vantage_columns,
    verdict_messages,
)
from schemas import topics
from schemas.bus import Bus
from schemas.findings import Finding
from schemas.normalize import epoch_seconds

PIPELINE_VERSION = 2
"""Written into every path verdict; windows with older rows are analysed again."""


@dataclass(slots=True)
class AnalysisContext:
    """What every window needs, opened once (constructors do no I/O: the caller opens the
    enricher)."""

    enricher: Enricher
    registry: Resolver
    applications: Mapping[str, Sequence[str]] = field(default_factory=dict)
    verdicts: VerdictSettings = field(default_factory=VerdictSettings)
    suffixes: SuffixTable = field(default_factory=default_suffixes)
    written_vantages: dict[str, Vantage] = field(default_factory=dict)  # no rewrite per window
    claims_in_clickhouse: bool = True
    """Ask ClickHouse for the window's geo claims (``consumers.claim_tables``); a fresh store
    pays the load of the dictionaries once (``docs/performance.md``)."""

    def dataset_versions(self) -> dict[str, str]:
        return {**self.enricher.dataset_versions(), self.suffixes.dataset: self.suffixes.version}


@dataclass(slots=True)
class WindowInput:
    start: dt.datetime
    end: dt.datetime
    hop_rows: Sequence[Mapping[str, Any]]
    """``traceroute_hops`` rows: one per result (``read_path_rows``) or one per reply."""
    mda_rows: Sequence[Mapping[str, Any]] = ()
    dns_rows: Sequence[Mapping[str, Any]] = ()
    resolutions: Sequence[Resolution] = ()
    ping_rows: Sequence[Mapping[str, Any]] = ()
    """``ping_results`` from :data:`PING_LOOKBACK` before the window to its end: they bound
    the addresses they reached (confirmation pings among them)."""


@dataclass(slots=True)
class WindowAnalysis:
    start: dt.datetime
    end: dt.datetime
    results: list[PathResult]
    findings: list[Finding]
    vantages: dict[str, Vantage]
    addresses: AddressMap
    anycast: frozenset[str] = frozenset()


def analyse_rows(data: WindowInput, context: AnalysisContext) -> WindowAnalysis:
    """Steps 2-5 of the module docstring, in memory."""
    paths = paths_from_rows(data.hop_rows) + paths_from_mda_rows(data.mda_rows)
    addresses = AddressMap(context.applications, data.resolutions, context.suffixes,
                           context.enricher.operators)
    window = window_from_rows(data.start, data.end, data.hop_rows, mda_rows=data.mda_rows,
                              dns_rows=data.dns_rows,
                              applications={k: list(v) for k, v in context.applications.items()})
    window.destination_applications = addresses.destination_applications(paths)
    resolver = context.registry
    locate(window, resolver)
    early = [d for d in DETECTORS if d in BEFORE_HOP_VERDICTS]
    late = [d for d in DETECTORS if d not in BEFORE_HOP_VERDICTS]
    findings = detect_all(window, early)
    anycast = anycast_addresses(findings)
    stages = hop_stage(paths, context.enricher, resolver, anycast,
                       ping_observations(data.ping_rows, resolver))
    evidence, vantages = evidence_from_stages((s.path, s.vantage, s.hops) for s in stages)
    window.evidence = evidence
    for key, vantage in vantages.items():
        window.vantages.setdefault(key, vantage)
    findings.extend(detect_all(window, late))
    results = classify_stage(stages, anycast, addresses.named_operator)
    for result in results:
        result.home_set = home_set(result.vantage, result.path.vantage_point, context.verdicts)
        result.applications = addresses.applications_of(result.path)
    return WindowAnalysis(data.start, data.end, results, findings, vantages, addresses, anycast)


PING_LOOKBACK = dt.timedelta(days=1)
"""Pings this long before a window bound the addresses of its paths (a confirmation ping
answers after the window that asked for it)."""
PINGS_SQL = """
SELECT measurement_id, probe_id, timestamp, vantage_point, source_address,
       destination_address, rtt_min_ms
FROM ping_results FINAL
WHERE timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}
  AND rtt_min_ms IS NOT NULL
"""


def read_input(storage: Any, start: dt.datetime, end: dt.datetime,
               context: AnalysisContext) -> WindowInput:
    """Step 1: every row the window's analysis reads (and the probe positions fetched
    meanwhile, into the registry: ``consumers.vantage_points``)."""
    if isinstance(context.registry, VantageRegistry):
        refresh_registry(context.registry, storage)
    hop_rows, mda_rows, dns_rows = read_path_rows(storage, start, end)  # one row per result
    if context.claims_in_clickhouse:
        # the geo claims of the window's addresses from ClickHouse's ip_trie dictionaries,
        # loaded once per store and dataset version (consumers.claim_tables)
        prime_enricher(storage, context.enricher, hop_rows, mda_rows)
    found: list[Resolution] = []
    hostnames = AddressMap(context.applications, (), context.suffixes,
                           context.enricher.operators).every_hostname()
    if hostnames:
        since = start - dt.timedelta(seconds=context.verdicts.period_s)
        rows = storage.query(DNS_SQL, {"start": since, "end": end,
                                       "hostnames": hostnames}).as_dicts()
        found = resolutions(rows, hostnames)
    pings = storage.query(PINGS_SQL, {"start": start - PING_LOOKBACK, "end": end}).as_dicts()
    return WindowInput(start, end, hop_rows, mda_rows, dns_rows, found, pings)


def split_input(data: WindowInput, window_s: int, period_s: float) -> dict[int, WindowInput]:
    """The rows of a span (:func:`read_input` over several windows) per window start, each
    with the DNS resolutions of its own period: one read for many windows, the same input."""
    def by_window(rows: Sequence[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
        out: dict[int, list[Mapping[str, Any]]] = {}
        for row in rows:
            stamp = epoch_seconds(row["timestamp"])
            out.setdefault(stamp - stamp % window_s, []).append(row)
        return out

    hops, mdas, dns = by_window(data.hop_rows), by_window(data.mda_rows), by_window(data.dns_rows)
    out = {}
    for window in sorted(set(hops) | set(mdas) | set(dns)):
        start = dt.datetime.fromtimestamp(window, dt.UTC)
        if not data.start <= start < data.end:
            continue
        found = [r for r in data.resolutions if window - period_s <= r.timestamp < window
                 + window_s]
        lookback = PING_LOOKBACK.total_seconds()
        pings = [r for r in data.ping_rows
                 if window - lookback <= epoch_seconds(r["timestamp"]) < window + window_s]
        out[window] = WindowInput(start, start + dt.timedelta(seconds=window_s),
                                  hops.get(window, []), mdas.get(window, []),
                                  dns.get(window, []), found, pings)
    return out


def _latest_home(analysis: WindowAnalysis) -> dict[str, int]:
    """Application -> the newest home path of this window measuring it."""
    latest: dict[str, int] = {}
    for result in analysis.results:
        if result.home_set:
            for app in result.applications:
                latest[app] = max(latest.get(app, 0), result.path.timestamp)
    return latest


@dataclass(slots=True)
class StoredPeriod:
    """The stored home paths and load-balanced US branches of the applications of one or
    more windows, read once (:func:`read_period`)."""

    paths: Mapping[str, Sequence[HomePath]]
    branches: Mapping[str, Sequence[Branch]]


def read_period(storage: Any, analyses: Sequence[WindowAnalysis],
                context: AnalysisContext) -> StoredPeriod:
    """One read of what the application stage of ``analyses`` needs: the home paths and
    branches from the earliest period start to the newest home path of any of them."""
    latest = [_latest_home(a) for a in analyses]
    stamps = [stamp for found in latest for stamp in found.values()]
    if not stamps:
        return StoredPeriod({}, {})
    period = context.verdicts.period_s
    since = dt.datetime.fromtimestamp(min(stamps) - period, dt.UTC)
    until = dt.datetime.fromtimestamp(max(stamps), dt.UTC)
    names = sorted({app for found in latest for app in found})
    return StoredPeriod(read_home_paths(storage, names, since, until),
                        read_us_branches(storage, names, since, until))


def application_stage(storage: Any, analysis: WindowAnalysis, context: AnalysisContext,
                      stored: StoredPeriod | None = None) -> list[ApplicationVerdict]:
    """Step 7: a verdict for every application this window measured from home, from the
    stored home paths of its period (``stored``: read with other windows)."""
    latest = _latest_home(analysis)
    if not latest:
        return []
    stored = stored if stored is not None else read_period(storage, [analysis], context)
    period = context.verdicts.period_s
    since = min(latest.values()) - period
    until = max(latest.values())
    out = []
    for app in sorted(latest):
        paths = [p for p in stored.paths.get(app, []) if latest[app] - period < p.timestamp
                 <= latest[app]]
        if not paths:
            continue
        home = {p.vantage_key for p in paths}
        hostnames = context.applications.get(app, ())
        chains, providers = [], []
        for vantage in sorted(home):
            for found in analysis.addresses.chains_for(vantage, hostnames):
                if len(found.chain) > 1:
                    chains.append(found.chain_text)
                    named = analysis.addresses.named_operator_of_chain(found.chain)
                    if named is not None:
                        providers.append(f"{named.operator} ({named.parent}, "
                                         f"{named.country})")
        out.append(classify_application(
            app, paths, period_s=period,
            branches=[b for b in stored.branches.get(app, []) if home & set(b.vantage_keys)
                      and b.window_end > since and b.window_start <= until],
            outlier_max_paths=context.verdicts.outlier_max_paths, hostnames=hostnames,
            cname_chains=chains, providers=providers))
    return out


@dataclass(slots=True)
class WindowSummary:
    paths: int = 0
    home_paths: int = 0
    hop_verdicts: int = 0
    corrections: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    applications: list[ApplicationVerdict] = field(default_factory=list)
    findings: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)


WindowStep = Callable[[WindowAnalysis, Bus | None], dict[str, Any]]
"""``(analysis, bus) -> summary``, run after the window's verdicts were stored and
published; a step must not derive verdicts again (it reads ``analysis.results``)."""
_TRACKERS: weakref.WeakKeyDictionary[Bus, ConfirmationTracker] = weakref.WeakKeyDictionary()


def confirmation_step(analysis: WindowAnalysis, bus: Bus | None) -> dict[str, Any]:
    """Hops of home paths whose US claim rests on a geo database alone (physics allows it,
    nothing proves it) -> confirmation requests on the bus (:mod:`consumers.confirm`; the
    scheduler pings them within its daily credit budget, and the pings bound the hop in
    later windows). One tracker per bus keeps the cool-down across windows."""
    if bus is None:  # ``grenswacht ingest`` without a running process: nobody schedules
        return {"requests": 0}
    tracker = _TRACKERS.get(bus)
    if tracker is None:
        tracker = _TRACKERS[bus] = ConfirmationTracker(bus)
    hops = [HopObservation(hop) for result in analysis.results if result.home_set
            for hop in result.hops]
    return {"requests": len(tracker.offer(hops, anycast=analysis.anycast))}


WINDOW_STEPS: dict[str, WindowStep] = {"confirm": confirmation_step}


def _merged(parts: Sequence[Mapping[str, list[Any]]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for part in parts:
        for name, values in part.items():
            out.setdefault(name, []).extend(values)
    return out


def analyse_span(storage: Any, bus: Bus | None, inputs: Sequence[WindowInput],
                 context: AnalysisContext, *, computed_at: dt.datetime | None = None,
                 ) -> list[WindowSummary | Exception]:
    """Analyse several windows (in time order) with one write per table and one read of
    the stored period: the same rows as :func:`analyse_window` on each window in turn.

    A window whose analysis (steps 2-5) raises gets its exception in the returned list and
    is left out; the writes and reads raise for the span as a whole (the caller can then
    analyse its windows one by one). Every window's rows are stored before any application
    verdict is read: a window's verdict reads no later window's rows (the reads are bounded
    by its own newest home path), so the verdicts equal those of one window at a time."""
    computed = computed_at or dt.datetime.now(dt.UTC)
    outcome: list[WindowSummary | Exception] = []
    done: list[tuple[WindowAnalysis, WindowSummary]] = []
    for data in inputs:
        try:
            analysis = analyse_rows(data, context)
        except Exception as exc:  # noqa: BLE001 - one window never stops the others
            outcome.append(exc)
            continue
        results = analysis.results
        summary = WindowSummary(paths=len(results),
                                home_paths=sum(1 for r in results if r.home_set))
        outcome.append(summary)
        if results or analysis.findings:
            done.append((analysis, summary))
    if not done:
        return outcome
    vantages: dict[str, Vantage] = {}
    for analysis, _ in done:
        vantages.update(analysis.vantages)
    changed = [v for k, v in vantages.items() if context.written_vantages.get(k) != v]
    if changed:
        fetched = getattr(context.registry, "fetched_at", {})
        storage.insert("vantage_points", vantage_columns(changed, computed, fetched))
    every = [r for analysis, _ in done for r in analysis.results]
    if every:
        storage.insert("hop_verdicts", hop_columns(every, computed))
        storage.insert("path_verdicts", path_columns(every, computed, PIPELINE_VERSION))
    store_findings(storage, [f for analysis, _ in done for f in analysis.findings],
                   computed)
    context.written_vantages.update((v.key, v) for v in changed)
    stored = read_period(storage, [analysis for analysis, _ in done], context)
    applications = []
    for analysis, summary in done:
        results = analysis.results
        summary.hop_verdicts = sum(len(r.hops) for r in results)
        summary.classes = dict(Counter(r.verdict.verdict for r in results))
        summary.corrections = sum(1 for r in results for h in r.hops if h.physical.corrections)
        summary.findings = len(analysis.findings)
        summary.kinds = dict(Counter(f.kind for f in analysis.findings))
        summary.applications = application_stage(storage, analysis, context, stored)
        if summary.applications:
            applications.append(application_columns(
                summary.applications, analysis.start, analysis.end,
                context.dataset_versions(), computed))
    if applications:
        storage.insert("application_verdicts", _merged(applications))
    for analysis, summary in done:
        _publish(bus, analysis, summary, computed)
    return outcome


def _publish(bus: Bus | None, analysis: WindowAnalysis, summary: WindowSummary,
             computed: dt.datetime) -> None:
    """Step 8 for one window: findings and verdict messages, then the window steps."""
    if bus is not None:
        publish_findings(bus, analysis.findings)
        messages = verdict_messages(analysis.results, analysis.start, analysis.end, computed)
        for message in messages:
            bus.publish(topics.VERDICTS, message.to_bytes(), key=message.target.encode(),
                        headers=[(topics.HEADER_SOURCE, b"analysis")])
        if messages:
            bus.flush()
        summary.messages = len(messages)
    for name, step in WINDOW_STEPS.items():
        summary.steps[name] = step(analysis, bus)


def analyse_window(storage: Any, bus: Bus | None, start: dt.datetime, end: dt.datetime,
                   context: AnalysisContext, *, computed_at: dt.datetime | None = None,
                   data: WindowInput | None = None) -> WindowSummary:
    """Analyse [start, end): read once (or take ``data``, read with other windows:
    :func:`split_input`), compute once, write each table once, publish."""
    (outcome,) = analyse_span(storage, bus, [data or read_input(storage, start, end, context)],
                              context, computed_at=computed_at)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome
