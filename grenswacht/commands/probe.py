"""``grenswacht probe trace|dns|run``: measure from this machine as a vantage point."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated, Any

import typer

from grenswacht.commands.common import console, err_console, fail, open_configured_bus, settings
from grenswacht.render import OutputFormat, print_json, print_rows, say
from probes.settings import ProbeSettings
from schemas.errors import GrenswachtError
from schemas.tasks import ProbeTask

ProbeFormat = Annotated[OutputFormat, typer.Option(
    "--format", "-f", help="table, csv (traceroute: one row per reply) or json (the "
    "RIPE Atlas-format result).")]
AllowOption = Annotated[
    list[str] | None,
    typer.Option("--allow", help="Network to allow as target for this run (repeatable)."),
]
NetnsOption = Annotated[
    str | None, typer.Option("--netns", help="Probe from this network namespace (root).")
]


def _probe_settings(netns: str | None, **updates: Any) -> ProbeSettings:
    base = settings().probe
    values = {k: v for k, v in updates.items() if v is not None}
    if netns is not None:
        values["netns"] = netns
    return base.model_copy(update=values)


def _run(task: ProbeTask, probe: ProbeSettings, allow: list[str] | None) -> list[dict[str, Any]]:
    from probes.context import RunContext
    from probes.runners import run_task

    try:
        return run_task(task, RunContext.from_settings(probe, tuple(allow or ())))
    except GrenswachtError as exc:
        fail(str(exc))


def _print_traceroute(result: dict[str, Any], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.csv:  # one row per reply
        print_rows(console, ["hop", "reply", "from", "rtt_ms", "error"], [
            [hop["hop"], index, p.get("from", ""), p.get("rtt"), p.get("err", "")]
            for hop in result["result"] for index, p in enumerate(hop["result"])], fmt)
        return
    rows = [[hop["hop"], "   ".join(
        "*" if "x" in p else f"{p['from']} {p['rtt']:.3f} ms" + (f" !{p['err']}"
                                                                 if "err" in p else "")
        for p in hop["result"])] for hop in result["result"]]
    print_rows(console, ["hop", "replies"], rows, fmt,
               title=f"traceroute to {result['dst_name']} ({result['dst_addr']}), "
                     f"{result['proto']} paris_id {result['paris_id']}")


def _print_mda(result: dict[str, Any], fmt: OutputFormat) -> None:
    print_rows(console, ["ttl", "interface", "flows"],
               [[node["ttl"], node["address"] or "*", len(node["flow_ids"])]
                for node in result["nodes"]], fmt,
               title=f"MDA to {result['dst_addr']}: {result['probes_sent']} probes, "
                     f"{result['flows_used']} flows, confidence {result['confidence']}, "
                     f"seed {result['flow_seed']}, stopped: {result['stop_reason']}")


def _print_dns(result: dict[str, Any], fmt: OutputFormat) -> None:
    import base64

    import dns.message

    rows: list[list[Any]] = []
    for entry in result.get("resultset") or [result]:
        if "result" not in entry:
            rows.append([entry["dst_addr"], None, f"error: {entry.get('error')}"])
            continue
        message = dns.message.from_wire(base64.b64decode(entry["result"]["abuf"]))
        lines = [rrset.to_text() for rrset in message.answer] or [message.rcode().name]
        rows.append([entry["dst_addr"], round(entry["result"]["rt"], 3), "\n".join(lines)])
    print_rows(console, ["resolver", "rt_ms", "answer"], rows, fmt,
               title=f"DNS {result['gw_query']['name']}")


def trace(
    destination: Annotated[str, typer.Argument(help="Hostname or address to trace.")],
    protocol: Annotated[str, typer.Option("--protocol", help="udp, icmp or tcp.")] = "udp",
    mda: Annotated[bool, typer.Option("--mda", help="Find every load-balanced branch.")] = False,
    allow: AllowOption = None,
    paris_id: Annotated[int, typer.Option("--paris-id", help="Flow id.")] = 0,
    af: Annotated[int, typer.Option("--af", help="4 or 6 (for hostnames).")] = 4,
    confidence: Annotated[float | None, typer.Option(help="MDA: 0.95 or 0.99.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait per probe.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="MDA: flow seed of an earlier run, to replay it.")
    ] = None,
    netns: NetnsOption = None,
    output: ProbeFormat = OutputFormat.table,
) -> None:
    """Paris traceroute (or MDA) to DESTINATION; prints the Atlas-format result."""
    if protocol not in ("udp", "icmp", "tcp") or af not in (4, 6):
        fail("--protocol must be udp, icmp or tcp and --af 4 or 6")
    if mda and protocol != "udp":
        fail("--mda runs over UDP only")
    if confidence is not None and confidence not in (0.95, 0.99):
        fail("--confidence must be 0.95 or 0.99")
    if seed is not None and not mda:
        fail("--seed replays an MDA run; use it with --mda")
    task = ProbeTask(task_id="cli", kind="mda" if mda else "traceroute", target=destination,
                     protocol=protocol, af=af, paris_id=paris_id,
                     options={} if seed is None else {"seed": seed})
    # the operator sets the limits themselves (a task on the bus may only ask for less)
    probe = _probe_settings(netns, timeout_s=timeout, mda_confidence=confidence)
    [result] = _run(task, probe, allow)
    if output is OutputFormat.json:
        print_json(console, result)
    elif mda:
        _print_mda(result, output)
    else:
        _print_traceroute(result, output)


def dns_command(
    name: Annotated[str, typer.Argument(help="Name to resolve (A and AAAA).")],
    resolver: Annotated[
        list[str] | None, typer.Option("--resolver", help="Resolver address (repeatable).")
    ] = None,
    query_type: Annotated[
        list[str] | None, typer.Option("--type", help="Query type (repeatable).")
    ] = None,
    tcp: Annotated[bool, typer.Option("--tcp", help="Query over TCP.")] = False,
    port: Annotated[int, typer.Option("--port", help="Resolver port.")] = 53,
    allow: AllowOption = None,
    netns: NetnsOption = None,
    output: ProbeFormat = OutputFormat.table,
) -> None:
    """Resolve NAME from this vantage point; prints the Atlas-format DNS result."""
    options: dict[str, Any] = {"query_types": query_type or ["A", "AAAA"], "port": port}
    if resolver:
        options["resolvers"] = resolver
    task = ProbeTask(task_id="cli", kind="dns", target=name,
                     protocol="tcp" if tcp else "udp", options=options)
    [result] = _run(task, _probe_settings(netns), allow)
    if output is OutputFormat.json:
        print_json(console, result)
    else:
        _print_dns(result, output)


def run(
    once: Annotated[bool, typer.Option("--once", help="Poll the tasks once and exit.")] = False,
) -> None:
    """Run the probe agent alone: tasks from the bus (and the local schedule) -> results."""
    from grenswacht.health import serve
    from probes.agent import Agent

    current = settings()
    try:
        agent = Agent(current.probe, open_configured_bus(current))
        agent.start()
    except GrenswachtError as exc:
        fail(str(exc))
    if not once:
        serve(current.metrics, lambda: True)
    stop = threading.Event()
    if once:
        agent.run_due()
        agent.poll_once(timeout=2.0)
    else:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        reporter = threading.Thread(target=_report, args=(agent, stop), daemon=True)
        reporter.start()
        agent.run_forever(stop)
    agent.close()
    print_json(console, agent.health())


def _report(agent: Any, stop: threading.Event) -> None:
    while not stop.wait(agent.settings.health_interval_s):
        say(err_console, f"health: {json.dumps(agent.health())}")


def register(app: typer.Typer) -> None:
    probe = typer.Typer(help="Measure from this machine as a self-hosted vantage point.",
                        no_args_is_help=True)
    probe.command("trace")(trace)
    probe.command("dns")(dns_command)
    probe.command("run")(run)
    app.add_typer(probe, name="probe")
