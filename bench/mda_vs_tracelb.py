"""grenswacht's MDA beside Debian scamper's ``tracelb`` on the namespace testbed (issue 16).

Builds every topology of ``tests/probes/testbed.py`` (real namespaces, ECMP, every router
hashing with the same function, so consecutive diamonds are correlated), runs both MDAs at
95 % to the topology's own target addresses only, and prints a markdown table: runs that
found every branch router, branch routers found on average, probes sent, seconds per run.
A branch router is found when any of its interface addresses is in the result. grenswacht
runs use seeds 0..RUNS-1 (replayable); scamper uses its default UDP method
(``udp-dport``) and, over IPv6, also ``icmp-echo``. Needs root and scamper.

    .venv/bin/python bench/mda_vs_tracelb.py [RUNS] [SCAMPER_RUNS]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.context import RunContext  # noqa: E402
from probes.mda import run_mda  # noqa: E402
from probes.scamper import run_tracelb, tracelb_interfaces  # noqa: E402
from probes.settings import ProbeSettings  # noqa: E402
from schemas.tasks import ProbeTask  # noqa: E402
from tests.probes import testbed  # noqa: E402

TOPOLOGIES: dict[str, Callable[[], testbed.Topology]] = {
    "diamond 2": testbed.diamond2,
    "diamond 3": testbed.diamond3,
    "unequal 1/2 hops": testbed.unequal,
    "meshed 2x2": testbed.meshed,
    "2 -> 2": testbed.two_diamonds,
    "3 -> 2": lambda: testbed.diamond_chain(3, 2),
    "4 -> 2": lambda: testbed.diamond_chain(4, 2),
    "2 -> 3": lambda: testbed.diamond_chain(2, 3),
    "2 -> 2 -> 2": lambda: testbed.diamond_chain(2, 2, 2),
}


def branch_routers(topology: testbed.Topology) -> list[str]:
    return [n for n in topology.nodes() if n not in ("src", "dst") and not n.startswith("r")]


def score(topology: testbed.Topology, af: int, seen: set[str]) -> int:
    return sum(1 for n in branch_routers(topology) if topology.interface_addresses(n, af) & seen)


def ours(topology: testbed.Topology, af: int, runs: int) -> dict[str, Any]:
    context = RunContext.from_settings(ProbeSettings(
        name="bench", netns=topology.ns("src"), mda_confidence=0.95,
        allow=[topology.network4, topology.network6], probes_per_second=0))
    target = topology.target4 if af == 4 else topology.target6
    found, probes, seconds = [], [], []
    for seed in range(runs):
        started = time.perf_counter()
        [result] = run_mda(ProbeTask(task_id="b", kind="mda", target=target, af=af,
                                     options={"seed": seed}), context)
        seconds.append(time.perf_counter() - started)
        found.append(score(topology, af, {n["address"] for n in result["nodes"]}))
        probes.append(result["probes_sent"])
    return {"found": found, "probes": probes, "seconds": seconds}


def theirs(topology: testbed.Topology, af: int, runs: int, method: str) -> dict[str, Any]:
    target = topology.target4 if af == 4 else topology.target6
    found, probes, seconds = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        result = run_tracelb(target, netns=topology.ns("src"), method=method)
        seconds.append(time.perf_counter() - started)
        found.append(score(topology, af, tracelb_interfaces(result)))
        probes.append(int(result.get("probec", 0)))
    return {"found": found, "probes": probes, "seconds": seconds}


def row(name: str, af: int, tool: str, total: int, measured: dict[str, Any]) -> str:
    found = measured["found"]
    complete = sum(1 for f in found if f == total)
    return (f"| {name} | IPv{af} | {tool} | {complete}/{len(found)} | "
            f"{statistics.mean(found):.2f} / {total} | {statistics.mean(measured['probes']):.0f} "
            f"({max(measured['probes'])}) | {statistics.mean(measured['seconds']):.1f} |")


def bench(name: str, factory: Callable[[], testbed.Topology], runs: int,
          scamper_runs: int) -> list[str]:
    topology = factory().build()
    try:
        total = len(branch_routers(topology))
        lines = []
        for af in (4, 6):
            lines.append(row(name, af, "grenswacht mda", total, ours(topology, af, runs)))
            methods = ["udp-dport"] + (["icmp-echo"] if af == 6 else [])
            for method in methods:
                lines.append(row(name, af, f"scamper tracelb {method}", total,
                                 theirs(topology, af, scamper_runs, method)))
        return lines
    finally:
        topology.destroy()


def main(runs: int = 20, scamper_runs: int = 10) -> None:
    reason = testbed.netns_unavailable_reason()
    if reason:
        raise SystemExit(reason)
    # topologies in parallel (separate namespaces): scamper waits 150 ms between probes
    with ThreadPoolExecutor(max_workers=3) as pool:
        tables = list(pool.map(lambda item: bench(item[0], item[1], runs, scamper_runs),
                               TOPOLOGIES.items()))
    print("| topology | af | tool | runs with every branch | branch routers found (mean) "
          "| probes sent mean (max) | seconds per run |")
    print("|---|---|---|---|---|---|---|")
    for lines in tables:
        print("\n".join(lines))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
