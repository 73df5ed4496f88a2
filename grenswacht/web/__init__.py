"""The web UI's pages, served by the endpoint next to the JSON API (grenswacht/server/).

This package is where the server-rendered UI lives (Jinja2 templates and static assets
beside this module, added by the UI work). :func:`routes` is what the application mounts;
each page declares its access with :func:`grenswacht.server.security.guard` (``"read"``
for pages, ``"write", session=True`` for forms that change something) and every form
carries a CSRF token (``request.app.state.csrf``: ``issue`` / ``attach`` / ``verify``).

For now: ``/`` (what the endpoint offers) and ``/login`` (a browser exchanges the token for a
session cookie, so forms such as "acknowledge alert" can be used without a bearer header).
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from grenswacht.server.api import form_fields
from grenswacht.server.auth import token_matches
from grenswacht.server.security import CSRF_FIELD, guard

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · grenswacht</title></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""


def page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    """A minimal page (``body`` is trusted HTML; escape every value put into it)."""
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body),
                        status_code=status_code)


@guard("read", session=True)
async def index(request: Request) -> Response:
    items = "".join(f"<li><code>{html.escape(p)}</code></li>" for p in
                    ("GET /status", "GET /metrics", "POST /sql", "POST /alerts/ack",
                     "POST /ingest"))
    return page("grenswacht", f"<p>Endpoints (docs/security.md):</p><ul>{items}</ul>"
                              '<p><a href="/login">Log in with the token</a></p>')


@guard("open")
async def login_form(request: Request) -> Response:
    csrf = request.app.state.csrf
    issued = csrf.issue(request)
    response = page("Log in", (
        '<form method="post" action="/login">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{html.escape(issued.value)}">'
        '<label>Token <input type="password" name="token" autocomplete="off"></label> '
        '<button type="submit">Log in</button></form>'))
    csrf.attach(response, issued)
    return response


@guard("open")
async def login(request: Request) -> Response:
    form = await form_fields(request)
    request.app.state.csrf.verify(request, form)
    if not token_matches(request.app.state.policy.token, form.get("token")):
        return page("Log in", "<p>Wrong token.</p>", status_code=401)
    response = RedirectResponse("/", status_code=303)
    request.app.state.sessions.set_cookie(response)
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
    ]
