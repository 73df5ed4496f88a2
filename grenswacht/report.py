"""The council report (``grenswacht report``): one self-contained HTML document — inline
CSS and SVG, no reference outside itself — or the same printed to PDF by headless Chromium
(grenswacht/pdf.py).

It reads what the UI reads (grenswacht/web/data.py: the stored current state, never a
verdict of its own) and renders ``templates/report.html`` in the chosen language (Dutch by
default): the summary with the shares per class, every application with its verdict and
one line of why, the path pictures of those hosted in or routed via the US, method and
limits (forward paths only, measurement period, dataset versions) and attribution.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grenswacht.pdf import print_pdf
from grenswacht.web import data
from grenswacht.web.i18n import DEFAULT_LANGUAGE
from grenswacht.web.labels import PICTURED
from grenswacht.web.pictures import Pictures
from grenswacht.web.templating import STATIC, render
from schemas.errors import GrenswachtError, RenderError
from schemas.store import Store

FORMATS = (".html", ".pdf")


@dataclass(frozen=True, slots=True)
class Report:
    html: str
    applications: tuple[str, ...]
    pictures: int


def build_report(store: Store, *, municipality: str | None = None,
                 language: str = DEFAULT_LANGUAGE, pictures: bool = True,
                 now: dt.datetime | None = None) -> Report:
    """The report's HTML for every application (of ``municipality`` when given)."""
    states = data.current_applications(store, municipality)
    drawn: dict[str, str] = {}
    failed: dict[str, str] = {}
    if pictures:
        painter = Pictures(size=1)
        for index, state in enumerate(s for s in states if s.verdict in PICTURED):
            try:
                svg = painter.picture(store, state, "svg", language, id_prefix=f"p{index}")
            except RenderError as exc:
                failed[state.application] = str(exc)
                continue
            if svg:
                drawn[state.application] = str(svg)
    context: dict[str, Any] = {
        "states": states, "municipality": municipality or "",
        "shares": data.shares_by_municipality(states),
        "coverage": data.coverage(store, states), "method": data.method(store),
        "pictures": drawn, "failed": failed, "generated": now or dt.datetime.now(dt.UTC),
        "css": (STATIC / "report.css").read_text(encoding="utf-8"),
    }
    html = render(language, "report.html", **context)
    return Report(html, tuple(s.application for s in states), len(drawn))


def write_report(report: Report, out: Path) -> None:
    """``out`` ending in .html: the document; .pdf: printed by headless Chromium."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise GrenswachtError(f"--out must end in .html or .pdf, not {out.name!r}")
    if suffix == ".pdf":
        print_pdf(report.html, out)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
