"""Jinja2 for the pages and the council report: one environment per language (gettext
installed, autoescape on), the filters the templates share, and :func:`render_page`.

Templates live in ``grenswacht/web/templates`` (pages extend ``base.html``; the report
``report.html``), static files in ``grenswacht/web/static`` (served at ``/static``).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from babel import Locale
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from grenswacht.server.security import SESSION_COOKIE, Sessions
from grenswacht.web import i18n
from grenswacht.web.labels import (
    CLASS_COLOURS,
    CLASS_EXPLANATIONS,
    CONFIDENCE_LABELS,
    COVERAGE_LABELS,
    CRITICALITY_LABELS,
    FINDING_LABELS,
    class_label,
    class_segments,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
LANGUAGE_MAX_AGE_S = 365 * 24 * 3600

NAVIGATION = (
    ("overview", "/", i18n.N_("Overview")),
    ("alerts", "/alerts", i18n.N_("Alerts")),
    ("findings", "/findings", i18n.N_("Findings")),
    ("vantage_points", "/vantage-points", i18n.N_("Vantage points")),
    ("map", "/map", i18n.N_("Map")),
)


def _when(value: Any) -> str:
    if not isinstance(value, dt.datetime):
        return "–"
    stamp: dt.datetime = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@lru_cache(maxsize=len(i18n.LANGUAGES))
def environment(language: str) -> Environment:
    """The template environment of ``language`` (cached; thread-safe to render from)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(),
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(i18n.gettext_for(language),  # type: ignore[attr-defined]
                                     newstyle=True)
    env.globals.update(language=language, languages=i18n.LANGUAGES,
                       language_names=i18n.LANGUAGE_NAMES, colours=CLASS_COLOURS,
                       navigation=NAVIGATION, class_explanations=CLASS_EXPLANATIONS,
                       confidence_labels=CONFIDENCE_LABELS, coverage_labels=COVERAGE_LABELS,
                       criticality_labels=CRITICALITY_LABELS, finding_labels=FINDING_LABELS)
    territories = Locale.parse(language).territories
    env.filters.update(
        when=_when,
        country_name=lambda code: territories.get(str(code), str(code)) if code else "",
        percent=lambda v: format_percent(v or 0, "#,##0 %", locale=language),
        number=lambda v, digits=0: format_decimal(
            v, f"#,##0{'.' + '0' * digits if digits else ''}", locale=language)
        if v is not None else "–",
        label=lambda c: class_label(c, i18n.gettext_for(language).gettext),
        segments=class_segments,
        urlpart=lambda v: quote(str(v), safe=""),
        t=lambda message: i18n.gettext_for(language).gettext(message),
    )
    return env


def render(language: str, template: str, **context: Any) -> str:
    return str(environment(language).get_template(template).render(**context))


def logged_in(request: Request) -> bool:
    return Sessions(request.app.state.policy).valid(request.cookies.get(SESSION_COOKIE))


def render_page(request: Request, template: str, *, active: str = "", status_code: int = 200,
                **context: Any) -> HTMLResponse:
    """A page in the request's language, with a CSRF token for its forms, the language
    switch (links to the same page in the other language) and the login state."""
    language, remember = i18n.negotiate(request.query_params.get("lang"),
                                        request.cookies.get(i18n.LANGUAGE_COOKIE))
    csrf = request.app.state.csrf
    issued = csrf.issue(request)
    query = {k: v for k, v in request.query_params.items() if k != "lang"}
    switch = {lang: f"{request.url.path}?{urlencode({**query, 'lang': lang})}"
              for lang in i18n.LANGUAGES}
    here = request.url.path + (f"?{urlencode(query)}" if query else "")
    body = render(language, template, request_path=here, csrf_token=issued.value,
                  active=active, language_links=switch, logged_in=logged_in(request),
                  **context)
    response = HTMLResponse(body, status_code=status_code)
    csrf.attach(response, issued)
    if remember:
        response.set_cookie(i18n.LANGUAGE_COOKIE, language, max_age=LANGUAGE_MAX_AGE_S,
                            httponly=True, samesite="lax",
                            secure=request.app.state.policy.secure_cookies)
    return response
