"""ICMP and TCP Paris traceroute through scamper (Debian package ``scamper``).

scamper needs raw sockets (root or ``CAP_NET_RAW``); the rootless UDP runner needs
neither. scamper runs as a subprocess (``scamper -O json -c "trace ..." -i DST``, inside
``ip netns exec NAME`` when the vantage point has a namespace) and its JSON trace becomes
a RIPE Atlas traceroute result: one hop per probe TTL, ``packets`` probes per hop (``-Q``
sends them all, like Atlas), ``{"x": "*"}`` for a probe without an answer.

The flow id: TCP uses source port ``33000 + paris_id`` to destination port 443 (option
``port``); ICMP Paris fixes the ICMP checksum to ``paris_id + 1`` (scamper's ``-d`` for
``icmp-paris``), so every probe of one trace has the same checksum and ICMP identifier.

:func:`run_tracelb` runs scamper's own MDA (``tracelb``) for the comparison with
grenswacht's (``bench/mda_vs_tracelb.py``, docs/probes.md); it returns scamper's JSON
object as is (there is no Atlas format for it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from probes.context import RunContext, now
from probes.flows import DEFAULT_SOURCE_PORT_BASE
from probes.settings import TaskOptions, task_options
from schemas.errors import ProbeError
from schemas.tasks import ProbeTask

_METHODS = {"icmp": "icmp-paris", "tcp": "tcp"}
_UNREACHABLE_FLAGS = {
    4: {0: "N", 1: "H", 2: "P", 9: "A", 10: "A", 13: "A"},
    6: {0: "N", 1: "A", 3: "H", 5: "A", 6: "A"},
}


def scamper_command(
    task: ProbeTask, options: TaskOptions, context: RunContext, address: str
) -> list[str]:
    settings = context.settings
    method = _METHODS.get(task.protocol)
    if method is None:
        raise ProbeError(f"scamper runner does not do {task.protocol!r} traceroute")
    wait = max(1, round(options.timeout_s))
    trace = [
        "trace", "-P", method, "-Q",
        "-q", str(options.packets),
        "-m", str(options.max_hops),
        "-w", str(wait),
        "-g", str(options.gap_limit),
    ]
    if task.protocol == "tcp":
        trace += ["-s", str(DEFAULT_SOURCE_PORT_BASE + task.paris_id),
                  "-d", str(options.port or 443)]
    else:
        trace += ["-d", str(task.paris_id + 1)]
    executable = shutil.which(settings.scamper) or settings.scamper
    command = [executable, "-O", "json", "-c", " ".join(trace), "-i", address]
    if settings.probes_per_second > 0:  # scamper paces itself
        command[1:1] = ["-p", str(max(1, int(settings.probes_per_second)))]
    if context.netns:
        command = ["ip", "netns", "exec", context.netns, *command]
    return command


def atlas_hops(trace: dict[str, Any], af: int, packets: int) -> list[dict[str, Any]]:
    """Atlas ``result`` entries from one scamper JSON trace object."""
    by_ttl: dict[int, dict[int, dict[str, Any]]] = {}
    for reply in trace.get("hops", []):
        by_ttl.setdefault(int(reply["probe_ttl"]), {})[int(reply.get("probe_id", 1))] = reply
    last = max([*by_ttl, int(trace.get("hop_count", 0))], default=0)
    hops = []
    for ttl in range(1, last + 1):
        entries: list[dict[str, Any]] = []
        for attempt in range(1, packets + 1):
            reply = by_ttl.get(ttl, {}).get(attempt)
            if reply is None:
                entries.append({"x": "*"})
                continue
            packet: dict[str, Any] = {
                "from": reply["addr"],
                "rtt": round(float(reply["rtt"]), 3),
                "size": int(reply.get("reply_size", 0)),
                "ttl": int(reply.get("reply_ttl", 0)),
            }
            unreachable = 3 if af == 4 else 1
            port_unreachable = 3 if af == 4 else 4
            code = int(reply.get("icmp_code", 0))
            if reply.get("icmp_type") == unreachable and code != port_unreachable:
                packet["err"] = _UNREACHABLE_FLAGS[af].get(code, str(code))
            entries.append(packet)
        hops.append({"hop": ttl, "result": entries})
    return hops


def run_scamper_traceroute(task: ProbeTask, context: RunContext) -> list[dict[str, Any]]:
    """A traceroute runner for ``protocol`` icmp or tcp (needs scamper's privileges)."""
    options = task_options(task, context.settings)
    address, name = context.resolve(task.target, task.af)
    af = 6 if ":" in address else 4
    command = scamper_command(task, options, context, address)
    packets = options.packets
    started = now()
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            command, capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"cannot run scamper: {exc}") from exc
    traces = [
        obj for obj in (json.loads(line) for line in done.stdout.splitlines() if line.strip())
        if obj.get("type") == "trace"
    ]
    if done.returncode != 0 or not traces:
        raise ProbeError(
            f"scamper failed (exit {done.returncode}): {done.stderr.strip()[:300] or 'no trace'}"
        )
    trace = traces[0]
    result = context.result_head(
        "traceroute",
        af=af,
        destination_address=address,
        destination_name=name,
        source_address=str(trace.get("src", "")),
        protocol=task.protocol,
        msm_id=task.msm_id,
        started=started,
    )
    result.update(
        {
            "paris_id": task.paris_id,
            "size": int(trace.get("probe_size", 0)),
            "result": atlas_hops(trace, af, packets),
            "endtime": int(now()),
            "gw_runner": "scamper",
        }
    )
    return [result]


def run_tracelb(
    address: str, *, netns: str | None = None, confidence: int = 95,
    method: str = "udp-dport", executable: str = "scamper", timeout_s: float = 900.0,
) -> dict[str, Any]:
    """One scamper ``tracelb`` to ``address`` (1 s reply wait, 1 attempt, 150 ms between
    probes — the least scamper 20211212 accepts); scamper's JSON ``tracelb`` object."""
    lb = f"tracelb -P {method} -c {confidence} -q 1 -w 1 -W 15"
    command = [shutil.which(executable) or executable, "-O", "json", "-c", lb, "-i", address]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"cannot run scamper: {exc}") from exc
    for line in done.stdout.splitlines():
        obj = json.loads(line) if line.strip() else {}
        if obj.get("type") == "tracelb":
            return dict(obj)
    raise ProbeError(f"scamper tracelb failed (exit {done.returncode}): "
                     f"{done.stderr.strip()[:300] or 'no tracelb object'}")


def tracelb_interfaces(tracelb: dict[str, Any]) -> set[str]:
    """Every interface address a ``tracelb`` object names (nodes and link ends)."""
    found = set()
    for node in tracelb.get("nodes", []):
        found.add(str(node.get("addr", "*")))
        for link in node.get("links", []):
            for hop in link:
                found.add(str(hop.get("addr", "*")))
    return found - {"*"}
