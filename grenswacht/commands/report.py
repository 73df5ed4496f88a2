"""``grenswacht report``: the council report as one self-contained HTML file or a PDF
(grenswacht/report.py; docs/report.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grenswacht.commands.common import StorageOption, console, fail, open_cli_store
from grenswacht.report import FORMATS, build_report, write_report
from grenswacht.web.i18n import DEFAULT_LANGUAGE, LANGUAGES
from schemas.errors import GrenswachtError


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write: FILE.html "
                                      "(self-contained) or FILE.pdf (headless Chromium).")],
    municipality: Annotated[str | None, typer.Option(
        "--municipality", "-m", help="Only the applications of this municipality.")] = None,
    language: Annotated[str, typer.Option("--lang", help="nl (default) or en.")] =
    DEFAULT_LANGUAGE,
    pictures: Annotated[bool, typer.Option(
        "--pictures/--no-pictures", help="Path pictures of the applications hosted in or "
        "routed via the US.")] = True,
    storage: StorageOption = None,
) -> None:
    """Write the report for a council meeting: shares per class, every application with
    its verdict and why, the paths of those hosted in or routed via the US, method, limits
    and sources."""
    if language not in LANGUAGES:
        fail(f"unknown language {language}: use {' or '.join(LANGUAGES)}")
    if out.suffix.lower() not in FORMATS:
        fail(f"--out must end in .html or .pdf, not {out.name!r}")
    store = open_cli_store(storage)
    try:
        built = build_report(store, municipality=municipality, language=language,
                             pictures=pictures)
    except GrenswachtError as exc:
        fail(str(exc))
    finally:
        store.close()
    if not built.applications:
        fail("no application to report on" + (f" for {municipality!r}" if municipality else
                                                 ": load an inventory (atlas.inventory)"))
    try:
        write_report(built, out)
    except GrenswachtError as exc:
        fail(str(exc))
    console.print(f"{len(built.applications)} applications, {built.pictures} pictures -> {out}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(report)
