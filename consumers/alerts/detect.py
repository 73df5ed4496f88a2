"""Change detection: confirmation, hysteresis and hold-down over jurisdiction atoms.

Per state key (application, vantage set, address family) the detector keeps:

* a **baseline** — every atom the key's series showed while they were learning (the first
  ``learn_results`` results of each series: one full Paris-ID cycle by default, so every
  known load-balancer branch is in it) or that stayed in the state; re-mapping between
  known branches and Paris-ID rotation therefore never shows anything new;
* **candidates** — atoms outside the baseline, with who saw them. A candidate is
  *confirmed* when ``confirm_vantage_points`` vantage points saw it, or one series saw it in
  ``confirm_rounds`` consecutive results, or it came with ``confirm_flow_ids`` different flow
  ids; unconfirmed candidates are forgotten after ``confirm_window_s``;
* **disappearances** (``alert_on_disappearance``) — a baseline atom that the series which
  last showed it (still live) and every other live series have not shown for
  ``learn_results`` consecutive results (a full Paris-ID cycle: no branch is missed), and
  not for ``hold_down_s``, is gone: it leaves the baseline and is ``removed`` in the alert.
  If it comes back, it returns to the baseline. A series that goes silent takes nothing
  with it (its atoms are forgotten after ``forget_after_s``, as before);
* at most one **open alert**. Confirmed atoms open it (or widen it: a new version). It
  resolves when every series that saw its atoms returned ``resolve_rounds`` results without
  them *and* they were last seen ``hold_down_s`` ago (hysteresis: a flapping change keeps one
  alert open instead of firing and resolving again and again). An alert of disappearances
  only resolves when the atoms come back, or when the new state has held for
  ``hold_down_s`` (it is the baseline now). A change confirmed again within ``hold_down_s``
  after resolving re-opens the same alert (``flaps`` + 1).

Time is event time (result timestamps), so a replay gives the same alerts as the live run.
A result older than the last one of its series is ignored (replays, duplicates). The state
serialises to JSON (:meth:`ChangeDetector.dump_key` / :meth:`load_key`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from consumers.alerts.settings import AlertSettings
from consumers.alerts.state import Observation, StateKey, summarize
from consumers.verdicts import DESCRIPTIONS
from schemas.alerts import FIRING, RESOLVED, Alert, Confirmation, Evidence

MAX_EVIDENCE = 8


def _time(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


@dataclass(slots=True)
class Candidate:
    first_seen: float
    last_seen: float
    vantage_points: dict[str, float] = field(default_factory=dict)  # vp -> last sighting
    flow_ids: dict[str, list[int]] = field(default_factory=dict)  # series -> flow ids
    streaks: dict[str, int] = field(default_factory=dict)
    best_streak: int = 0
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def confirmation(self, cfg: AlertSettings) -> Confirmation | None:
        rules = []
        together = sum(1 for t in self.vantage_points.values()
                       if self.last_seen - t <= cfg.confirm_vantage_window_s)
        if together >= cfg.confirm_vantage_points:
            rules.append(f"seen by {together} vantage points within "
                         f"{cfg.confirm_vantage_window_s:.0f} s")
        if self.best_streak >= cfg.confirm_rounds:
            rules.append(f"seen in {self.best_streak} consecutive results of one series")
        flows = max((len(f) for f in self.flow_ids.values()), default=0)
        if flows >= cfg.confirm_flow_ids:
            rules.append(f"seen with {flows} flow ids by one series")
        if not rules:
            return None
        return Confirmation(vantage_points=together,
                            consecutive_results=self.best_streak,
                            flow_ids=flows, rule="; ".join(rules))


@dataclass(slots=True)
class Held:
    """An atom held by the open alert: when it was last seen and, per series that saw it,
    how many results came since without it."""

    last_seen: float
    absent: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class KeyState:
    baseline: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)  # [results, last timestamp]
    candidates: dict[str, Candidate] = field(default_factory=dict)
    alert: Alert | None = None  # the open (firing) alert
    held: dict[str, Held] = field(default_factory=dict)
    last_resolved: Alert | None = None
    clock: float = 0.0
    # baseline atom -> series -> results in a row without it; the series that last showed it
    absent: dict[str, dict[str, int]] = field(default_factory=dict)
    last_series: dict[str, str] = field(default_factory=dict)
    removed: dict[str, float] = field(default_factory=dict)  # atom -> when it was removed


class ChangeDetector:
    """Feed observations in; get alert versions (opened, widened, resolved) out."""

    def __init__(self, settings: AlertSettings) -> None:
        self.cfg = settings
        self.keys: dict[StateKey, KeyState] = {}
        self.touched: set[StateKey] = set()

    # -- the rules ---------------------------------------------------------------------
    def feed(self, obs: Observation) -> list[Alert]:
        """Apply one observation; return the alert versions people should hear about."""
        state = self.keys.setdefault(obs.key, KeyState())
        counters = state.series.get(obs.series)
        if counters is not None and obs.timestamp <= counters[1]:
            return []  # already seen (replay) or late
        if counters is None:
            counters = state.series[obs.series] = [0, 0.0]
        counters[0] += 1
        counters[1] = obs.timestamp
        state.clock = max(state.clock, obs.timestamp)
        self.touched.add(obs.key)
        for atom in obs.atoms & state.baseline.keys():
            state.baseline[atom] = max(state.baseline[atom], obs.timestamp)
        for atom in obs.atoms & state.removed.keys():  # it came back: baseline again
            del state.removed[atom]
            state.baseline[atom] = obs.timestamp
        if counters[0] <= self.cfg.learn_results:
            for atom in obs.atoms - state.held.keys():
                state.baseline[atom] = max(state.baseline.get(atom, 0.0), obs.timestamp)
                state.candidates.pop(atom, None)
        else:
            self._compare(state, obs)
        self._count_absence(state, obs, learning=counters[0] <= self.cfg.learn_results)
        events = self._confirm(state, obs, self._disappeared(state))
        self._expire(state)
        resolved = self._maybe_resolve(state)
        if resolved is not None:
            events.append(resolved)
        return events

    def _compare(self, state: KeyState, obs: Observation) -> None:
        for atom in obs.atoms - state.baseline.keys():
            held = state.held.get(atom)
            if held is not None:
                held.last_seen = max(held.last_seen, obs.timestamp)
                held.absent[obs.series] = 0
                continue
            cand = state.candidates.get(atom)
            if cand is None:
                cand = state.candidates[atom] = Candidate(obs.timestamp, obs.timestamp)
            cand.last_seen = obs.timestamp
            cand.vantage_points[obs.vantage_point] = obs.timestamp
            flows = cand.flow_ids.setdefault(obs.series, [])
            if obs.flow_id is not None and obs.flow_id not in flows:
                flows.append(obs.flow_id)
            streak = cand.streaks.get(obs.series, 0) + 1
            cand.streaks[obs.series] = streak
            cand.best_streak = max(cand.best_streak, streak)
            if atom in obs.evidence and len(cand.evidence) < MAX_EVIDENCE:
                cand.evidence.append(obs.evidence[atom].model_dump(mode="json"))
        for atom, cand in state.candidates.items():
            if atom not in obs.atoms and obs.series in cand.streaks:
                cand.streaks[obs.series] = 0
        for atom, held in state.held.items():
            if atom not in obs.atoms and obs.series in held.absent:
                held.absent[obs.series] += 1
        if state.alert is not None and obs.atoms & state.held.keys():
            state.alert.last_seen = max(state.alert.last_seen, _time(obs.timestamp))

    def _count_absence(self, state: KeyState, obs: Observation, *, learning: bool) -> None:
        for atom in state.baseline:
            counts = state.absent.setdefault(atom, {})
            if atom in obs.atoms:
                counts[obs.series] = 0
                state.last_series[atom] = obs.series
            elif not learning:
                counts[obs.series] = counts.get(obs.series, 0) + 1

    def _disappeared(self, state: KeyState) -> dict[str, Confirmation]:
        """Baseline atoms no live series showed for a full cycle (module docstring)."""
        if not self.cfg.alert_on_disappearance:
            return {}
        clock, need = state.clock, self.cfg.learn_results
        live = {s for s, (_n, last) in state.series.items()
                if clock - last < self.cfg.stale_series_s}
        gone: dict[str, Confirmation] = {}
        for atom, last_seen in state.baseline.items():
            owner = state.last_series.get(atom)
            counts = state.absent.get(atom, {})
            if owner not in live or clock - last_seen < self.cfg.hold_down_s:
                continue
            if all(counts.get(series, 0) >= need for series in live):
                gone[atom] = Confirmation(
                    vantage_points=len({s.split("|", 1)[0] for s in live}),
                    consecutive_results=min(counts.get(s, 0) for s in live),
                    rule=f"not seen by any of {len(live)} live series for {need} results "
                    f"and {self.cfg.hold_down_s:.0f} s")
        return gone

    def _confirm(self, state: KeyState, obs: Observation,
                 disappeared: dict[str, Confirmation] | None = None) -> list[Alert]:
        confirmed: dict[str, Confirmation] = {}
        for atom, cand in state.candidates.items():
            found = cand.confirmation(self.cfg)
            if found is not None:
                confirmed[atom] = found
        gone = disappeared or {}
        if not confirmed and not gone:
            return []
        cands = {atom: state.candidates.pop(atom) for atom in confirmed}
        for atom, cand in cands.items():
            state.held[atom] = Held(cand.last_seen, dict.fromkeys(cand.streaks, 0))
        for atom in gone:
            state.removed[atom] = state.clock
            del state.baseline[atom]
            state.absent.pop(atom, None)
        evidence = [Evidence.model_validate(e) for c in cands.values() for e in c.evidence]
        rule = next(iter(confirmed.values())) if confirmed else next(iter(gone.values()))
        first = min([c.first_seen for c in cands.values()] or [state.clock])
        last = max([c.last_seen for c in cands.values()] or [state.clock])
        if state.alert is not None:
            alert = state.alert.model_copy(deep=True)
            alert.version += 1
        else:
            previous = state.last_resolved
            if (previous is not None and previous.resolved_at is not None
                    and first - previous.resolved_at.timestamp() <= self.cfg.hold_down_s):
                alert = previous.model_copy(deep=True)
                alert.version += 1
                alert.flaps += 1
                alert.state = FIRING
                alert.resolved_at = None
                alert.added = []
                alert.removed = []
                alert.evidence = []
            else:
                alert = self._new_alert(state, obs, first, frozenset(gone))
        alert.added = sorted(set(alert.added) | set(confirmed))
        alert.removed = sorted(set(alert.removed) | set(gone))
        alert.after = summarize(set(state.baseline) | set(alert.added))
        alert.last_seen = max(alert.last_seen, _time(last))
        alert.confirmation = rule
        alert.evidence = (alert.evidence + evidence)[-MAX_EVIDENCE:]
        alert.summary = self._summary(alert)
        state.alert = alert
        state.last_resolved = None
        return [alert]

    def _new_alert(self, state: KeyState, obs: Observation, first: float,
                   gone: frozenset[str] = frozenset()) -> Alert:
        key = obs.key
        digest = hashlib.sha256(f"{key.text}|{first:.3f}".encode()).hexdigest()[:20]
        info = obs.application
        return Alert(
            alert_id=digest, version=1, application=key.application,
            vantage_set=key.vantage_set, address_family=key.address_family,
            municipalities=list(info.municipalities), criticality=info.criticality,
            severity=self.cfg.severity.get(info.criticality, "warning"),
            first_seen=_time(first), last_seen=_time(first),
            before=summarize(set(state.baseline) | gone),
            after=summarize(state.baseline),
        )

    @staticmethod
    def _summary(alert: Alert) -> str:
        parts = []
        new_physical = sorted(set(alert.after.physical) - set(alert.before.physical))
        new_legal = sorted(set(alert.after.legal) - set(alert.before.legal))
        if new_physical:
            parts.append("traffic now physically passes " + ", ".join(new_physical))
        if new_legal:
            parts.append("operators under the law of " + ", ".join(new_legal))
        if alert.removed:
            parts.append("no longer seen: " + ", ".join(alert.removed))
        if alert.after.verdict != alert.before.verdict:
            parts.append(f"verdict {DESCRIPTIONS.get(alert.before.verdict, alert.before.verdict)}"
                         f" -> {DESCRIPTIONS.get(alert.after.verdict, alert.after.verdict)}")
        what = "; ".join(parts) or "new jurisdiction: " + ", ".join(alert.added)
        return (f"{alert.application} (from {alert.vantage_set} vantage points, "
                f"IPv{alert.address_family}): {what}")

    def _expire(self, state: KeyState) -> None:
        clock = state.clock
        for atom in [a for a, c in state.candidates.items()
                     if clock - c.last_seen > self.cfg.confirm_window_s]:
            del state.candidates[atom]
        for atom in [a for a, t in state.baseline.items()
                     if clock - t > self.cfg.forget_after_s]:
            del state.baseline[atom]
            state.absent.pop(atom, None)
            state.last_series.pop(atom, None)

    def _maybe_resolve(self, state: KeyState) -> Alert | None:
        alert = state.alert
        if alert is None:
            return None
        clock = state.clock
        if state.removed and not state.held:
            if clock - max(state.removed.values()) < self.cfg.hold_down_s:
                return None
            how = f"the new state held for {self.cfg.hold_down_s:.0f} s and is the baseline now"
        elif not state.held and alert.removed:
            how = "back to the previous state"  # every removed atom came back
        else:
            for held in state.held.values():
                if clock - held.last_seen < self.cfg.hold_down_s:
                    return None
                for series, absent in held.absent.items():
                    last = state.series.get(series, [0, 0.0])[1]
                    if (absent < self.cfg.resolve_rounds
                            and clock - last < self.cfg.stale_series_s):
                        return None
            how = "back to the previous state"
        resolved = alert.model_copy(deep=True)
        resolved.version += 1
        resolved.state = RESOLVED
        resolved.resolved_at = _time(clock)
        resolved.summary = f"resolved: {alert.summary} ({how})"
        state.alert = None
        state.held.clear()
        state.removed.clear()
        state.last_resolved = resolved
        return resolved

    # -- persistence -----------------------------------------------------------------------
    def dump_key(self, key: StateKey) -> dict[str, Any]:
        s = self.keys[key]
        return {
            "baseline": s.baseline,
            "series": s.series,
            "candidates": {a: {"first_seen": c.first_seen, "last_seen": c.last_seen,
                               "vantage_points": c.vantage_points,
                               "flow_ids": c.flow_ids, "streaks": c.streaks,
                               "best_streak": c.best_streak, "evidence": c.evidence}
                           for a, c in s.candidates.items()},
            "alert": s.alert.model_dump(mode="json") if s.alert else None,
            "held": {a: {"last_seen": h.last_seen, "absent": h.absent}
                     for a, h in s.held.items()},
            "last_resolved": s.last_resolved.model_dump(mode="json") if s.last_resolved
            else None,
            "clock": s.clock,
            "absent": s.absent,
            "last_series": s.last_series,
            "removed": s.removed,
        }

    def load_key(self, key: StateKey, data: dict[str, Any]) -> None:
        self.keys[key] = KeyState(
            baseline={a: float(t) for a, t in data["baseline"].items()},
            series={k: [float(v[0]), float(v[1])] for k, v in data["series"].items()},
            candidates={a: Candidate(
                c["first_seen"], c["last_seen"], dict(c["vantage_points"]),
                {k: list(v) for k, v in c["flow_ids"].items()},
                dict(c["streaks"]), c["best_streak"], list(c["evidence"]))
                for a, c in data["candidates"].items()},
            alert=Alert.model_validate(data["alert"]) if data["alert"] else None,
            held={a: Held(h["last_seen"], dict(h["absent"])) for a, h in data["held"].items()},
            last_resolved=Alert.model_validate(data["last_resolved"])
            if data["last_resolved"] else None,
            clock=float(data["clock"]),
            absent={a: {k: int(v) for k, v in c.items()}
                    for a, c in data.get("absent", {}).items()},
            last_series=dict(data.get("last_series", {})),
            removed={a: float(t) for a, t in data.get("removed", {}).items()},
        )

    def open_alerts(self) -> list[Alert]:
        return [s.alert for s in self.keys.values() if s.alert is not None]
