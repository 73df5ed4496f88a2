"""Rootless UDP Paris traceroute (IPv4 and IPv6) producing a RIPE Atlas traceroute result.

Like RIPE Atlas: ``packets`` (default 3) probes per hop, sent one after another on the
same flow (``paris_id`` fixes the 5-tuple, see :mod:`probes.flows`); a probe without an
answer within ``timeout_s`` is ``{"x": "*"}``; the trace ends when the destination
answers (ICMP port unreachable), when an ICMP unreachable carries an error (``err``:
``N``/``H``/``A``/``P`` or the numeric code), after ``gap_limit`` silent hops in a row, or
at ``max_hops``.
"""

from __future__ import annotations

from typing import Any

from probes.context import RunContext, now
from probes.flows import Probe, Reply, UdpFlowProber, prober_for, target_of
from probes.settings import task_options
from schemas.tasks import ProbeTask


def packet_json(reply: Reply | None) -> dict[str, Any]:
    """One Atlas hop-reply entry."""
    if reply is None:
        return {"x": "*"}
    packet: dict[str, Any] = {"from": reply.address, "rtt": reply.rtt_ms, "size": reply.size}
    if reply.reply_ttl is not None:
        packet["ttl"] = reply.reply_ttl
    if reply.error_flag is not None:
        packet["err"] = reply.error_flag
    return packet


def trace_hops(
    prober: UdpFlowProber, flow_id: int, *, max_hops: int, packets: int, gap_limit: int
) -> list[dict[str, Any]]:
    """Run the hop loop and return Atlas ``result`` entries."""
    hops: list[dict[str, Any]] = []
    silent = 0
    for ttl in range(1, max_hops + 1):
        replies = [prober.probe([Probe(flow_id, ttl)])[0] for _ in range(packets)]
        hops.append({"hop": ttl, "result": [packet_json(r) for r in replies]})
        answered = [r for r in replies if r is not None]
        if any(r.reached or r.error_flag for r in answered):
            break
        silent = 0 if answered else silent + 1
        if silent >= gap_limit:
            break
    return hops


def run_traceroute(task: ProbeTask, context: RunContext) -> list[dict[str, Any]]:
    """A :data:`probes.runners.RUNNERS` entry: one Atlas ``traceroute`` result."""
    options = task_options(task, context.settings)
    address, name, af = target_of(task, context)
    started = now()
    with prober_for(options, context, address, af) as prober:
        hops = trace_hops(
            prober,
            task.paris_id,
            max_hops=options.max_hops,
            packets=options.packets,
            gap_limit=options.gap_limit,
        )
        source = prober.source_address()
    result = context.result_head(
        "traceroute",
        af=af,
        destination_address=address,
        destination_name=name,
        source_address=source,
        protocol="udp",
        msm_id=task.msm_id,
        started=started,
    )
    result.update(
        {
            "paris_id": task.paris_id,
            "size": prober.payload_size,
            "result": hops,
            "endtime": int(now()),
            "gw_probes_sent": prober.probes_sent,
        }
    )
    return [result]
