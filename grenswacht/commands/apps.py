"""``grenswacht apps``: the current verdict of every application, one row each, with the
shares per class, the home vantage points and paths counted, the period and one line of
why (``consumers.current``; ``docs/verdicts.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from consumers.current import (
    ApplicationState,
    coverage,
    current_applications,
    shares_by_municipality,
)
from consumers.verdicts import DESCRIPTIONS, FORWARD_ONLY_NOTE
from grenswacht.commands.common import (
    FormatOption,
    StorageOption,
    console,
    fail,
    open_cli_store,
)
from grenswacht.render import OutputFormat, print_json, print_rows, say
from schemas.errors import GrenswachtError

SHORT = {
    "hosted_in_us": "US-hosted", "routed_via_us": "via US", "us_operated_in_eu": "US-op EU",
    "elsewhere": "elsewhere", "eu_hosted_eu_operated": "EU", "unknown": "unknown",
}


def _shares(state: ApplicationState) -> str:
    return ", ".join(f"{SHORT.get(k, k)} {v:.0%}" for k, v in
                     sorted(state.shares.items(), key=lambda kv: -kv[1]))


def _period(state: ApplicationState) -> str:
    if state.period_end is None:
        return ""
    return f"{state.period_end:%Y-%m-%d %H:%M}"


TABLE_COLUMNS = ("application", "verdict", "confidence", "shares of home paths", "VPs",
                 "paths", "measured until (UTC)", "why")
OPTIONAL_COLUMNS = ("measured until (UTC)", "VPs", "paths", "shares of home paths")
"""Left out, in this order, where the table would not fit (80 columns keep the first four
and why)."""


NOT_MEASURED_WHY = {
    "no_results": "no results for its hostnames yet",
    "dns_only": "only DNS answers so far, no traceroute",
    "not_analysed": "traceroutes stored, not analysed yet",
    "not_home": "paths only from vantage points outside its home set (the web UI shows "
                "them)",
}
"""Why an application has no verdict (:func:`consumers.current.coverage`), in words."""


def _rows(states: Sequence[ApplicationState],
          why_not: dict[str, str]) -> list[list[object]]:
    return [[s.application, s.verdict if s.measured else "not measured",
             s.confidence if s.measured else "", _shares(s), len(s.vantage_points) or "",
             s.paths or "", _period(s),
             s.why if s.measured else NOT_MEASURED_WHY.get(why_not.get(s.application, ""), "")]
            for s in states]


def apps(
    municipality: Annotated[str | None, typer.Option(
        "--municipality", "-m", help="Only the applications of this municipality.")] = None,
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The current verdict of every application, from the home vantage points."""
    try:
        store = open_cli_store(storage)
        try:
            states = current_applications(store, municipality)
            why_not = coverage(store, states)
        finally:
            store.close()
    except GrenswachtError as exc:
        fail(str(exc))
    if municipality and not states:
        fail(f"no application of municipality {municipality!r} in the inventory")
    if fmt is OutputFormat.json:
        print_json(console, [s.as_dict() if s.measured else {
            **s.as_dict(), "coverage": why_not.get(s.application, ""),
            "why": NOT_MEASURED_WHY.get(why_not.get(s.application, ""), "")}
            for s in states])
        return
    if fmt is OutputFormat.csv:
        columns = ["application", "verdict", "confidence", "shares", "vantage_points",
                   "paths", "period_start", "period_end", "why", "municipalities"]
        print_rows(console, columns, [[
            s.application, s.verdict, s.confidence, s.shares, len(s.vantage_points), s.paths,
            s.period_start, s.period_end,
            s.why if s.measured else NOT_MEASURED_WHY.get(why_not.get(s.application, ""), ""),
            list(s.municipalities)] for s in states], fmt)
        return
    print_apps(states, why_not)


def print_apps(states: Sequence[ApplicationState],
               why_not: dict[str, str] | None = None) -> None:
    """The table (with why an application has no verdict yet: ``why_not``, from
    :func:`consumers.current.coverage`), the shares per municipality and the forward-paths
    note."""
    print_rows(console, TABLE_COLUMNS, _rows(states, why_not or {}), OutputFormat.table,
               title=f"{len(states)} applications", optional=OPTIONAL_COLUMNS)
    for name, shares in shares_by_municipality(states).items():
        line = ", ".join(f"{DESCRIPTIONS[k].split(' (')[0]} {v:.1%}" for k, v in shares.items())
        say(console, f"{name or '(no municipality)'}: {line}")
    say(console, FORWARD_ONLY_NOTE, style="dim")


def register(app: typer.Typer) -> None:
    app.command()(apps)
