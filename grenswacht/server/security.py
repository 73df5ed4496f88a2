"""Who may talk to the endpoint and how (docs/security.md): Host and Origin checks against
DNS rebinding and cross-site requests, security headers, the bearer token, a browser
session cookie, and CSRF tokens for forms.

* :class:`SecurityMiddleware` (pure ASGI, wraps every route, errors included): refuses a
  ``Host`` that is not one of the server's names (403), a foreign ``Origin`` or a
  ``Sec-Fetch-Site: cross-site`` unsafe request (403), and adds the security headers.
* :func:`guard` on each endpoint: ``"open"`` (``/healthz``), ``"read"`` (token needed when
  bound to a non-loopback address), ``"write"`` (token always needed). A request is
  authenticated by ``Authorization: Bearer <token>`` or, for pages, by the session cookie
  that ``POST /login`` sets (:class:`Sessions`).
* :class:`Csrf`: a form carries ``csrf_token``, an HMAC of the browser's random
  ``gw_csrf`` cookie; :meth:`Csrf.verify` checks both (double submit, signed). Pages call
  :meth:`Csrf.token` to render the field and :meth:`Csrf.verify` before acting.

Keys for the session and CSRF signatures are derived from the endpoint token, so rotating
the token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grenswacht.server.auth import bearer, is_loopback, token_matches
from grenswacht.server.responses import error_response

Access = Literal["open", "read", "write"]
Endpoint = Callable[[Request], Awaitable[Response]]

SESSION_COOKIE = "gw_session"
CSRF_COOKIE = "gw_csrf"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 12 * 3600

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    # same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` with a
    # form POST to the very page's site, and the Origin check would refuse every form
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Policy:
    """What the endpoint enforces; built once from the settings (``create_app``)."""

    token: str
    reads_need_token: bool
    allowed_hosts: frozenset[str]
    """Lower-case host names without port; loopback names are always allowed."""
    secure_cookies: bool = False

    def host_allowed(self, host_header: str) -> bool:
        host = _host_name(host_header)
        return bool(host) and (is_loopback(host) or host in self.allowed_hosts)

    def key(self, purpose: str) -> bytes:
        return hmac.new(self.token.encode(), f"grenswacht {purpose}".encode(),
                        hashlib.sha256).digest()


def _host_name(host_header: str) -> str:
    """``Example.org:8765`` -> ``example.org``; ``[::1]:80`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    """Host / Origin checks and security headers for every HTTP response."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._refusal(scope, headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    out.setdefault(name, value)
                out.setdefault("cache-control", "no-store")
            await send(message)

        if problem is not None:
            response = error_response(403, problem, "Forbidden")
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: Headers) -> str | None:
        host = headers.get("host", "")
        if not self.policy.host_allowed(host):
            return (f"host {host[:100]!r} is not a name of this server (DNS rebinding "
                    "protection): add it to server.allowed_hosts")
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, scope, host):
            return f"cross-site request from origin {origin[:100]!r} refused"
        if (scope["method"] not in SAFE_METHODS
                and headers.get("sec-fetch-site", "") == "cross-site"):
            return "cross-site request refused"
        return None


def _same_origin(origin: str, scope: Scope, host: str) -> bool:
    """The Origin names this very host (scheme aside: behind a TLS-terminating proxy the
    browser says https, the proxy speaks http to us)."""
    parts = urlsplit(origin.strip())
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


class Sessions:
    """A signed, expiring session cookie for browsers that logged in with the token."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._key = policy.key("session")

    def issue(self, now: float | None = None) -> str:
        stamp = str(int(now if now is not None else time.time()))
        return f"{stamp}.{_sign(self._key, stamp)}"

    def valid(self, cookie: str | None, now: float | None = None) -> bool:
        if not cookie or "." not in cookie:
            return False
        stamp, _, signature = cookie.partition(".")
        if not stamp.isdigit() or not hmac.compare_digest(signature, _sign(self._key, stamp)):
            return False
        age = (now if now is not None else time.time()) - int(stamp)
        return 0 <= age <= SESSION_MAX_AGE_S

    def set_cookie(self, response: Response) -> None:
        response.set_cookie(SESSION_COOKIE, self.issue(), max_age=SESSION_MAX_AGE_S,
                            httponly=True, samesite="strict", secure=self.policy.secure_cookies)


@dataclass(frozen=True, slots=True)
class CsrfToken:
    cookie: str = field(repr=False)
    value: str = field(repr=False)
    """The value of the form's hidden ``csrf_token`` input."""
    new: bool = False


class Csrf:
    """Double-submit CSRF tokens, signed: the form field is an HMAC of the browser's random
    ``gw_csrf`` cookie, so a page on another site can neither read nor forge it.

    A page: ``issued = csrf.issue(request)``; render ``issued.value`` in a hidden
    ``csrf_token`` input; ``csrf.attach(response, issued)``. The form's handler:
    ``csrf.verify(request, form)`` before it acts."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._key = policy.key("csrf")

    def issue(self, request: Request) -> CsrfToken:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if len(cookie) >= 32:
            return CsrfToken(cookie, _sign(self._key, cookie))
        cookie = secrets.token_urlsafe(32)
        return CsrfToken(cookie, _sign(self._key, cookie), new=True)

    def attach(self, response: Response, issued: CsrfToken) -> None:
        if issued.new:
            response.set_cookie(CSRF_COOKIE, issued.cookie, httponly=True, samesite="strict",
                                secure=self.policy.secure_cookies)

    def verify(self, request: Request, form: Mapping[str, str]) -> None:
        """Raise 403 unless the form's ``csrf_token`` matches the ``gw_csrf`` cookie."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = form.get(CSRF_FIELD, "")
        if not cookie or not sent or not hmac.compare_digest(sent, _sign(self._key, cookie)):
            raise HTTPException(403, "missing or invalid CSRF token: reload the page")


def _sign(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def authenticated(request: Request, policy: Policy, *, allow_session: bool) -> bool:
    if token_matches(policy.token, bearer(request.headers.get("authorization"))):
        return True
    return allow_session and Sessions(policy).valid(request.cookies.get(SESSION_COOKIE))


def guard(access: Access, *, session: bool = False) -> Callable[[Endpoint], Endpoint]:
    """Check the token for ``access`` before the endpoint runs. ``session=True`` also
    accepts the browser session cookie (pages and their forms; forms must also call
    :meth:`Csrf.verify`). The policy is ``request.app.state.policy``."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @wraps(endpoint)
        async def checked(request: Request) -> Response:
            policy: Policy = request.app.state.policy
            needed = access == "write" or (access == "read" and policy.reads_need_token)
            if needed and not authenticated(request, policy, allow_session=session):
                raise HTTPException(401, "this route needs `Authorization: Bearer <token>` "
                                         "(server.token; see docs/security.md)",
                                    headers={"WWW-Authenticate": "Bearer"})
            return await endpoint(request)

        checked.access = access  # type: ignore[attr-defined]
        return checked

    return decorate


def access_of(endpoint: Any) -> Access | None:
    """The access level :func:`guard` gave an endpoint (None: unguarded)."""
    return getattr(endpoint, "access", None)
