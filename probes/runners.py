"""The runner registry: task kind -> function ``(ProbeTask, RunContext) -> results``.

Built-ins are registered like extensions (datasette's ``DEFAULT_PLUGINS``). ``traceroute``
picks its implementation by protocol: UDP runs the rootless Paris runner
(:mod:`probes.traceroute`), ICMP and TCP run scamper (:mod:`probes.scamper`, needs the
privileges scamper needs). ``mda`` is grenswacht's own MDA over the rootless prober.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from probes.context import RunContext
from probes.dns import run_dns
from probes.mda import run_mda
from probes.scamper import run_scamper_traceroute
from probes.traceroute import run_traceroute
from schemas.tasks import ProbeTask

Runner = Callable[[ProbeTask, RunContext], list[dict[str, Any]]]


def run_any_traceroute(task: ProbeTask, context: RunContext) -> list[dict[str, Any]]:
    if task.protocol == "udp":
        return run_traceroute(task, context)
    return run_scamper_traceroute(task, context)


RUNNERS: dict[str, Runner] = {
    "traceroute": run_any_traceroute,
    "dns": run_dns,
    "mda": run_mda,
}


def run_task(task: ProbeTask, context: RunContext) -> list[dict[str, Any]]:
    """Run ``task`` with the registered runner for its kind."""
    return RUNNERS[task.kind](task, context)
