"""The endpoint's ASGI application: :func:`create_app`.

Routes come in two groups: the JSON API (grenswacht/server/api.py) and the pages of the web
UI (grenswacht/web/, server-rendered). Both are wrapped by the same protections: Host and
Origin checks and security headers (:class:`~grenswacht.server.security.SecurityMiddleware`),
a limit on requests processed at once (503 beyond it), and JSON errors for every refusal.

A page module adds routes by returning them from its ``routes()``; each endpoint declares
its access with :func:`~grenswacht.server.security.guard`. What a page needs is on
``request.app.state``: ``backend`` (status, the store), ``policy``, ``csrf``, ``sessions``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from grenswacht.server import api
from grenswacht.server.api import Backend
from grenswacht.server.responses import error_response
from grenswacht.server.security import Csrf, Policy, SecurityMiddleware, Sessions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 64 * 1024 * 1024
    max_small_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 60.0
    max_concurrent_requests: int = 16


class ConcurrencyLimit:
    """At most ``limit`` requests in the application at once; more get 503 at once (no
    queue: a client retries, the process stays responsive)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.semaphore = anyio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.semaphore.acquire_nowait()
        except anyio.WouldBlock:
            response = error_response(503, "too many requests at once; retry shortly",
                                      "Unavailable", {"Retry-After": "1"})
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.semaphore.release()


class EndpointApp(Starlette):
    """Starlette with :class:`SecurityMiddleware` outside even its error middleware, so
    every answer, a 500 included, passes the Host/Origin checks and gets the headers."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityMiddleware(super().build_middleware_stack(), self.state.policy)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    kinds = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
             405: "MethodNotAllowed", 408: "Timeout", 413: "TooLarge",
             415: "UnsupportedMediaType", 503: "Unavailable"}
    message = exc.detail if exc.status_code != 404 else f"no such endpoint {request.url.path}"
    return error_response(exc.status_code, str(message), kinds.get(exc.status_code, "Error"),
                          exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s: %s", request.url.path, type(exc).__name__, exc_info=exc)
    return error_response(500, "internal error (see the server log)", "InternalError")


def create_app(
    backend: Backend,
    policy: Policy,
    limits: Limits | None = None,
    *,
    pages: Sequence[BaseRoute] | None = None,
) -> EndpointApp:
    """The endpoint application for ``backend``. ``pages``: the web UI's routes (default:
    :func:`grenswacht.web.routes`); a test may pass its own."""
    from grenswacht import web

    limits = limits or Limits()
    app = EndpointApp(
        routes=[*api.routes(), *(web.routes() if pages is None else pages)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.backend = backend
    app.state.policy = policy
    app.state.csrf = Csrf(policy)
    app.state.sessions = Sessions(policy)
    app.state.max_body = limits.max_body_bytes
    app.state.small_body = limits.max_small_body_bytes
    app.state.body_timeout_s = limits.body_timeout_s
    app.add_middleware(ConcurrencyLimit, limit=limits.max_concurrent_requests)
    return app
