"""The web UI's pages, served by the endpoint next to the JSON API (grenswacht/server/).

Server-rendered (Jinja2 templates in ``templates/``, Dutch and English through gettext:
``i18n.py``, ``locale/``), every asset in the package (``static/``: one stylesheet, one
small script for progressive enhancement; no CDN, no web font). Pages work without
JavaScript. What the pages read: :mod:`grenswacht.web.data` (one module, so the UI never
derives a verdict itself). Each endpoint declares its access with
:func:`grenswacht.server.security.guard`; every form carries a CSRF token.

| path | page |
|---|---|
| ``/`` | overview: shares per class per municipality, applications at risk first |
| ``/applications/{name}`` | verdict and why, DNS, picture, hops, findings, alerts |
| ``/pictures/{name}.svg``, ``.png`` | its path picture |
| ``/raw/{name}.json`` | the stored RIPE Atlas results behind its paths |
| ``/alerts``, ``POST /alerts/acknowledge`` | alerts; acknowledge (logged in, CSRF) |
| ``/findings``, ``/vantage-points``, ``/map`` | findings, vantage points, world map |
| ``/login`` | exchange the token for a session cookie |
| ``/static/{file}`` | the stylesheet and script |
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from grenswacht.server.security import guard
from grenswacht.web import pages
from grenswacht.web.templating import STATIC

STATIC_FILES = {p.name: p for p in STATIC.iterdir() if p.is_file()} if STATIC.is_dir() else {}
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
                ".png": "image/png", ".ico": "image/x-icon"}


@guard("open")
async def static(request: Request) -> Response:
    """A file of ``static/`` by name (no paths: nothing else on disk can be reached)."""
    path = STATIC_FILES.get(request.path_params["name"])
    if path is None:
        raise HTTPException(404, "no such file")
    return FileResponse(path, media_type=STATIC_TYPES.get(path.suffix, "text/plain"),
                        headers={"cache-control": "max-age=3600"})


def routes() -> list[BaseRoute]:
    return [
        Route("/", pages.overview, methods=["GET"]),
        Route("/applications/{name:path}", pages.application, methods=["GET"]),
        Route("/pictures/{name:path}.{format}", pages.picture, methods=["GET"]),
        Route("/raw/{name:path}.json", pages.raw, methods=["GET"]),
        Route("/alerts", pages.alerts, methods=["GET"]),
        Route("/alerts/acknowledge", pages.acknowledge, methods=["POST"]),
        Route("/findings", pages.findings, methods=["GET"]),
        Route("/vantage-points", pages.vantage_points, methods=["GET"]),
        Route("/map", pages.world_map, methods=["GET"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
