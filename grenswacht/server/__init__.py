"""The HTTP endpoint of ``grenswacht run``: a Starlette application (:func:`create_app`,
grenswacht/server/app.py) served by uvicorn in a thread of the process (:class:`Endpoint`).

Routes and their JSON contract: grenswacht/server/api.py; who may call what:
grenswacht/server/security.py and docs/security.md.

uvicorn closes idle keep-alive connections after ``server.keep_alive_s``; a connection that
does not complete a request within ``server.header_timeout_s`` of opening (or of its last
answer) is closed too (:class:`GuardedH11Protocol`: uvicorn alone keeps such a connection
open for ever). At most ``server.max_connections`` connections are served.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from grenswacht.server.api import Backend
from grenswacht.server.app import Limits, create_app
from grenswacht.server.auth import ServerToken, is_loopback
from grenswacht.server.security import Csrf, Policy, Sessions, guard
from grenswacht.settings import ServerSettings
from schemas.errors import GrenswachtError

__all__ = ["Csrf", "Endpoint", "Limits", "Policy", "Sessions", "create_app", "guard",
           "policy_for"]

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 30.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        deadline: asyncio.TimerHandle | None = getattr(self, "_header_deadline", None)
        if deadline is not None:
            deadline.cancel()
        self._header_deadline = self.loop.call_later(self.header_timeout_s,
                                                     self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        deadline: asyncio.TimerHandle | None = getattr(self, "_header_deadline", None)
        if deadline is not None:
            deadline.cancel()
        super().connection_lost(exc)


def policy_for(settings: ServerSettings, token: ServerToken) -> Policy:
    """The :class:`Policy` of an endpoint bound as ``settings`` say."""
    hosts = {h.strip().lower().rsplit(":", 1)[0] if h.count(":") == 1 else h.strip().lower()
             for h in settings.allowed_hosts if h.strip()}
    bind = settings.host.strip().lower()
    if bind not in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
        hosts.add(bind.strip("[]"))
    return Policy(token=token.value,
                  reads_need_token=settings.reads_need_token or not is_loopback(settings.host),
                  allowed_hosts=frozenset(hosts))


class Endpoint:
    """uvicorn serving :func:`create_app` in a daemon thread; ``start`` returns the URL once
    the socket is bound (port 0: a free one), ``stop`` waits for the thread."""

    def __init__(self, backend: Backend, settings: ServerSettings, token: ServerToken, *,
                 policy: Policy | None = None) -> None:
        self.backend = backend
        self.settings = settings
        self.token = token
        self.policy = policy or policy_for(settings, token)
        self.port = settings.port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        if host in ("0.0.0.0", "::"):  # noqa: S104 - compared, not bound
            shown = "127.0.0.1" if host == "0.0.0.0" else "[::1]"  # noqa: S104
        return f"http://{shown}:{self.port}"

    def start(self) -> str:
        cfg = self.settings
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((cfg.host, cfg.port))
        except OSError as exc:
            sock.close()
            raise GrenswachtError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}") from exc
        sock.listen(min(cfg.max_connections, 1024))
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        protocol = type("Protocol", (GuardedH11Protocol,),
                        {"header_timeout_s": cfg.header_timeout_s})
        app = create_app(self.backend, self.policy, Limits(
            max_body_bytes=cfg.max_body_bytes, max_small_body_bytes=cfg.max_small_body_bytes,
            body_timeout_s=cfg.body_timeout_s,
            max_concurrent_requests=cfg.max_concurrent_requests))
        config = uvicorn.Config(
            app, http=protocol, ws="none", lifespan="off", loop="asyncio",
            log_config=None, access_log=False, server_header=False,
            timeout_keep_alive=max(1, round(cfg.keep_alive_s)),
            limit_concurrency=cfg.max_connections, timeout_graceful_shutdown=5,
            h11_max_incomplete_event_size=64 * 1024,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="endpoint", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise GrenswachtError(f"the endpoint on {cfg.host}:{self.port} did not start")
            threading.Event().wait(0.02)
        return self.url

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None  # noqa: S101
        try:
            self._server.run(sockets=[self._socket])
        except Exception:  # noqa: BLE001 - reported by start() / the log
            log.exception("the endpoint stopped with an error")

    def stop(self, timeout: float = 15.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if self._socket is not None:
            self._socket.close()

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r})"

