"""Result -> alert latency through Kafka, with default settings.

    python bench/alert_latency.py [--targets K] [--scenarios S] [--pace SECONDS]

Starts a real broker (``tools/kafka/broker.py``, in a temporary directory), ``grenswacht
run`` on it (``bus = kafka://…``, a fresh chDB store, the webhook channel pointed at a
loopback receiver in this process, RIPE Atlas probe metadata fetching off so nothing leaves
the machine, every other setting its default), then replays the
change of ``tests/alerts/replay.py`` (real Dutch traceroutes to Wikimedia's Amsterdam site,
two probes detouring through real US routers for three rounds): round by round, ``--pace``
seconds apart, for ``K`` targets at once (the same results under K target names and
measurement ids, each watched as an application), ``S`` times (weeks apart). Every alert
delivery (firing, then resolved) is timed from the publication of the round that was the
latest before it; ``--pace`` must exceed the slowest latency (a delivery after the next
round would be mis-attributed, and is reported). Prints p50, p99 and max.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from schemas import topics  # noqa: E402
from schemas.bus import open_bus  # noqa: E402
from tests.alerts import replay  # noqa: E402
from tools.kafka import broker  # noqa: E402

PROBE_FILES = sorted((ROOT / "tests" / "fixtures" / "atlas" / "api").glob(
    "pierky_*_probes_api_v2.json"))
ROUNDS = range(24)
"""Rounds of the replayed sequence: 18 normal (the detector learns the state; fewer, e.g.
six, raise no alert), three detouring (18-20), three normal (the alert resolves after two
clean rounds and the hold-down)."""


class Receiver:
    """Loopback webhook receiver: records (arrival time, alert) of every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.monotonic()
                with receiver.lock:
                    receiver.deliveries.append((arrived, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def clone(result: dict[str, Any], target: int, scenario: int) -> dict[str, Any]:
    out = copy.deepcopy(result)
    if target:
        out["dst_name"] = f"wikipedia-lb-{target}.esams.wikimedia.org"
        out["msm_id"] = int(result["msm_id"]) + 1000 * target
    week = 7 * 86400 * scenario
    out["timestamp"] = int(result["timestamp"]) + week
    if "endtime" in out:
        out["endtime"] = int(out["endtime"]) + week
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--scenarios", type=int, default=3)
    parser.add_argument("--pace", type=float, default=10.0, help="seconds between rounds")
    args = parser.parse_args()
    sequence = replay.detour_sequence()
    per_round = len(replay.NL_PROBES)
    work = Path(tempfile.mkdtemp(prefix="gw-latency-"))
    state = broker.start(work / "kafka")
    receiver = Receiver()
    env = {**os.environ, "GRENSWACHT_DATA_DIR": str(work / "data"),
           "XDG_CONFIG_HOME": str(work / "config"), "GRENSWACHT_SERVER__PORT": "0",
           "GRENSWACHT_BUS": f"kafka://{state.bootstrap}",
           "GRENSWACHT_ALERTS__WEBHOOK_URL": receiver.url,
           "GRENSWACHT_ALERTS__WEBHOOK_SECRET": "loopback-bench-secret",
           # nothing leaves this machine: no RIPE Atlas probe metadata fetches
           "GRENSWACHT_ATLAS__PROBE_METADATA__ENABLED": "false",
           "GRENSWACHT_JURISDICTION__ATLAS_PROBE_FILES": json.dumps([str(p) for p in
                                                                     PROBE_FILES])}
    log = (work / "run.log").open("wb")
    run = subprocess.Popen([sys.executable, "-m", "grenswacht.cli", "-v", "run"], env=env,
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while not (work / "data" / "run.json").exists():
            if run.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("grenswacht run did not come up")
            time.sleep(0.2)
        bus = open_bus(f"kafka://{state.bootstrap}")
        published: list[float] = []
        for scenario in range(args.scenarios):
            for index in ROUNDS:
                results = sequence[index * per_round:(index + 1) * per_round]
                for target in range(args.targets):
                    for result in results:
                        cloned = clone(result, target, scenario)
                        bus.publish(topics.RESULTS, orjson.dumps(cloned),
                                    key=cloned["dst_name"].encode(),
                                    headers=((topics.HEADER_SOURCE, b"atlas"),))
                bus.flush()
                published.append(time.monotonic())
                time.sleep(args.pace)
        expected = 2 * args.targets * args.scenarios
        deadline = time.monotonic() + 120
        while len(receiver.deliveries) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        bus.close()
        status = subprocess.run([sys.executable, "-m", "grenswacht.cli", "status", "-f", "json"],
                                env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        (work / "status.json").write_text(status.stdout)
    finally:
        run.terminate()
        run.wait(60)
        log.close()
        broker.stop(work / "kafka")
    print(f"logs and status in {work}")
    latencies, late = [], 0
    for arrived, _ in receiver.deliveries:
        before = [t for t in published if t <= arrived]
        latencies.append(arrived - before[-1])
        late += arrived - before[-1] > args.pace
    states = [body.get("alert", {}).get("state") for _, body in receiver.deliveries]
    print(f"{len(receiver.deliveries)} deliveries of {2 * args.targets * args.scenarios} "
          f"expected ({states.count('firing')} firing, {states.count('resolved')} resolved); "
          f"{late} later than the pace")
    if latencies:
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        print(f"result -> alert: p50 {statistics.median(ordered):.2f} s, p99 {p99:.2f} s, "
              f"max {ordered[-1]:.2f} s (goal p99 < 5 s); load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
