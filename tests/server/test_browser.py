"""Browser-facing protections: the login form's CSRF token, the session cookie, and reads
that need the token when the endpoint is not on loopback."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from consumers.storage import Storage
from grenswacht.embedded import Embedded
from grenswacht.server import Endpoint, policy_for
from grenswacht.server.auth import ServerToken, server_token
from grenswacht.server.security import CSRF_COOKIE, SESSION_COOKIE, Sessions
from tests.server.conftest import Running, settings_for

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture()
def guarded(storage: Storage, chdb_dsn: str, tmp_path: Path) -> Iterator[Running]:
    """An endpoint with the policy of a non-loopback bind (reads need the token), served
    on loopback (no traffic leaves the machine)."""
    cfg = settings_for(tmp_path, chdb_dsn)
    app = Embedded(cfg)
    app.start(only=set(), with_endpoint=False)
    token = server_token(cfg)
    policy = dataclasses.replace(policy_for(cfg.server, token), reads_need_token=True)
    endpoint = Endpoint(app, cfg.server, token, policy=policy)
    url = endpoint.start()
    try:
        yield Running(app, url, token.value, storage)
    finally:
        endpoint.stop()
        app.stop()


def _cookies(set_cookie: str) -> dict[str, str]:
    return dict(re.findall(r"(gw_\w+)=([^;,\s]+)", set_cookie))


def test_reads_need_the_token_off_loopback(guarded: Running) -> None:
    assert guarded.request("GET", "/status").status == 401
    assert guarded.sql("SELECT 1").status == 401
    assert guarded.request("GET", "/metrics").status == 401
    assert guarded.request("GET", "/status", token=guarded.token).status == 200
    assert guarded.sql("SELECT 1", token=guarded.token).status == 200
    assert guarded.request("GET", "/healthz").status == 200  # liveness probes stay open


def test_login_form_needs_its_csrf_token_and_gives_a_session(guarded: Running) -> None:
    page = guarded.request("GET", "/login")
    assert page.status == 200
    cookies = _cookies(page.headers["set-cookie"])
    assert "HttpOnly" in page.headers["set-cookie"] and "SameSite=strict" in (
        page.headers["set-cookie"])
    field = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
    assert field is not None and CSRF_COOKIE in cookies
    csrf = field.group(1).decode()
    jar = f"{CSRF_COOKIE}={cookies[CSRF_COOKIE]}"

    def post(fields: dict[str, str], cookie: str = jar) -> tuple[int, str]:
        reply = guarded.request("POST", "/login", raw=urlencode(fields).encode(),
                                headers={**FORM, "Cookie": cookie})
        return reply.status, reply.headers.get("set-cookie", "")

    assert post({"token": guarded.token})[0] == 403  # no CSRF field
    assert post({"token": guarded.token, "csrf_token": "0" * 64})[0] == 403  # forged
    assert post({"token": guarded.token, "csrf_token": csrf}, cookie="")[0] == 403  # no cookie
    assert post({"token": "wrong" * 5, "csrf_token": csrf})[0] == 401
    status, set_cookie = post({"token": guarded.token, "csrf_token": csrf})
    assert status == 303
    session = _cookies(set_cookie)[SESSION_COOKIE]
    assert guarded.request("GET", "/", headers={"Cookie": f"{SESSION_COOKIE}={session}"}
                           ).status == 200
    assert guarded.request("GET", "/").status == 401
    forged = session[:-1] + ("1" if session.endswith("0") else "0")  # never the session
    assert guarded.request("GET", "/", headers={
        "Cookie": f"{SESSION_COOKIE}={forged}"}).status == 401
    # a JSON write route takes the bearer token only, never the cookie
    assert guarded.request("POST", "/alerts/ack", {"alert_id": "x", "by": "y"}, headers={
        "Cookie": f"{SESSION_COOKIE}={session}"}).status == 401


def test_sessions_expire_and_are_tied_to_the_token(guarded: Running) -> None:
    policy = policy_for(guarded.app.settings.server, ServerToken(guarded.token, "test"))
    sessions = Sessions(policy)
    cookie = sessions.issue(now=1_000_000)
    assert sessions.valid(cookie, now=1_000_000 + 60)
    assert not sessions.valid(cookie, now=1_000_000 + 13 * 3600)
    other = Sessions(dataclasses.replace(policy, token="another-token-1234567"))  # noqa: S106
    assert not other.valid(cookie, now=1_000_000 + 60)
