"""Replay sequences built from real RIPE Atlas results (see tests/fixtures/PROVENANCE.md).

* :func:`rounds` replays results as successive measurement rounds, the way a periodic
  RIPE Atlas traceroute delivers them: timestamps advance by the interval and ``paris_id``
  advances by one per round (Atlas rotates it over 0..15).
* :func:`detour` turns a real Dutch traceroute to Wikimedia's Amsterdam site into a
  boomerang through the US: after the AMS-IX hop the packets cross to real US router
  interfaces — Level3 ``4.69.144.143`` and ``64.215.81.146`` from the real ripe-atlas-tools
  traceroute (msm 3606560, probe 12185, a Comcast probe in the US) — and come back. Their
  RTTs are the AMS-IX hop's RTT + 78 ms (a typical Amsterdam–New York round trip; the
  physical minimum for the 5,860 km is 58.6 ms) + their RTT difference in the original US
  trace; the destination then replies after a second crossing (+156 ms). Every RTT is
  consistent with physics: no US hop is closer than light in fibre allows.

:func:`published_paths` runs results through the analysis pipeline in memory (one pass per
window, as ``grenswacht run`` does) and returns the path verdicts it would publish on the
verdicts topic — what the alerts component reads.

``python -m tests.alerts.replay`` rewrites ``tests/fixtures/alerts/wikipedia_detour.jsonl``
(a test checks the file equals what the builder makes).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from consumers.pipeline import AnalysisContext, WindowInput, analyse_rows
from consumers.verdict_tables import verdict_messages
from schemas.normalize import normalize
from schemas.verdicts import PathMessage

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WIKIPEDIA = FIXTURES / "atlas" / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl"
US_TRACES = FIXTURES / "atlas" / "traceroute" / "ripe_atlas_tools_tests.jsonl"
DETOUR_FILE = FIXTURES / "alerts" / "wikipedia_detour.jsonl"
AMS_IX = "195.69.145.176"
NL_PROBES = (3161, 12081, 12189)  # Amsterdam, Nijmegen, Nijmegen (probe API metadata)
DETOUR_PROBES = (3161, 12081)
TRANSATLANTIC_MS = 78.0
INTERVAL_S = 900
Result = dict[str, Any]


def load(path: Path) -> list[Result]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def shifted(result: Result, round_index: int, interval_s: int = INTERVAL_S) -> Result:
    out = copy.deepcopy(result)
    out["timestamp"] = result["timestamp"] + round_index * interval_s
    if "endtime" in out:
        out["endtime"] = result["endtime"] + round_index * interval_s
    if "paris_id" in out:
        out["paris_id"] = (int(result["paris_id"]) + round_index) % 16
    return out


def rounds(results: Sequence[Result], count: int,
           interval_s: int = INTERVAL_S) -> Iterator[list[Result]]:
    for index in range(count):
        yield [shifted(r, index, interval_s) for r in results]


def _us_hops() -> list[tuple[str, float]]:
    """(address, RTT relative to the first Level3 core hop) from the real US traceroute."""
    trace = next(r for r in load(US_TRACES) if r["prb_id"] == 12185)
    wanted = ("4.69.144.143", "64.215.81.146")
    out: list[tuple[str, float]] = []
    base = None
    for hop in trace["result"]:
        replies = [x for x in hop.get("result", []) if x.get("from") in wanted]
        if replies and not any(a == replies[0]["from"] for a, _ in out):
            rtt = min(x["rtt"] for x in replies)
            base = rtt if base is None else base
            out.append((replies[0]["from"], rtt - base))
    return out


def detour(result: Result) -> Result:
    """The same probe's traceroute, detouring through the US after the AMS-IX hop."""
    out = copy.deepcopy(result)
    hops = out["result"]
    index = next(i for i, hop in enumerate(hops)
                 if any(x.get("from") == AMS_IX for x in hop.get("result", [])))
    ix_rtt = min(x["rtt"] for x in hops[index]["result"] if x.get("from") == AMS_IX)
    new = hops[: index + 1]
    for address, extra in _us_hops():
        rtt = round(ix_rtt + TRANSATLANTIC_MS + extra, 3)
        new.append({"hop": len(new) + 1, "result": [
            {"from": address, "rtt": round(rtt + spread, 3), "size": 28, "ttl": 250}
            for spread in (0.0, 0.41, 0.87)]})
    destination = hops[-1]
    back = round(ix_rtt + 2 * TRANSATLANTIC_MS + 1.2, 3)
    new.append({"hop": len(new) + 1, "result": [
        {**reply, "rtt": round(back + i * 0.3, 3)} if "rtt" in reply else reply
        for i, reply in enumerate(destination["result"])]})
    out["result"] = new
    return out


def detour_sequence() -> list[Result]:
    """27 rounds of 3 Dutch probes: 18 normal, 3 with two probes detouring via the US
    (rounds 18-20), 6 normal again."""
    base = {r["prb_id"]: r for r in load(WIKIPEDIA) if r["prb_id"] in NL_PROBES}
    sequence = []
    for index in range(27):
        for probe in NL_PROBES:
            result = base[probe]
            if 18 <= index <= 20 and probe in DETOUR_PROBES:
                result = detour(result)
            sequence.append(shifted(result, index))
    return sequence


def published_paths(results: Sequence[Result], context: AnalysisContext,
                    window_s: int = 3600) -> Iterator[list[PathMessage]]:
    """Per window (in time order) the path verdicts the analysis publishes for it."""
    by_window: dict[int, list[Result]] = {}
    for result in results:
        by_window.setdefault(result["timestamp"] - result["timestamp"] % window_s,
                             []).append(result)
    for window in sorted(by_window):
        rows = {"traceroute_hops": [], "mda_links": [], "dns_answers": []}
        for result in by_window[window]:
            normalized = normalize(result, source="atlas")
            for table, found in rows.items():
                found.extend(normalized.as_dicts(table))
        start = dt.datetime.fromtimestamp(window, dt.UTC)
        data = WindowInput(start, start + dt.timedelta(seconds=window_s),
                           rows["traceroute_hops"], rows["mda_links"], rows["dns_answers"])
        analysis = analyse_rows(data, context)
        messages = verdict_messages(analysis.results, data.start, data.end, data.start)
        yield sorted((p for m in messages for p in m.paths), key=lambda p: p.timestamp)


def dumps(results: Sequence[Result]) -> str:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in results)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DETOUR_FILE
    target.write_text(dumps(detour_sequence()))
