"""The endpoint's bearer token and who needs it (docs/security.md).

Where the token comes from, first match wins: ``server.token`` (env
``GRENSWACHT_SERVER__TOKEN``), ``server.token_file``, ``<data_dir>/server.token``. When none
exists, ``grenswacht run`` generates the last one (mode 0600) at its first start on a loopback
address; a non-loopback address refuses to start without a configured token. The CLI reads
the same places to talk to the local ``run`` (:func:`find_token`).

The token is compared in constant time (:func:`token_matches`) and never logged: the
:class:`ServerToken` repr hides it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from grenswacht.settings import Settings
from schemas.errors import ConfigError

TOKEN_FILE_NAME = "server.token"  # noqa: S105 - a file name, not a secret
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True, slots=True)
class ServerToken:
    value: str = field(repr=False)
    source: str
    """Where it was found: ``server.token`` or a file path (safe to print)."""
    created: bool = False


def is_loopback(host: str) -> bool:
    """True for loopback names and addresses (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_token_file(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE_NAME


def find_token(settings: Settings) -> ServerToken | None:
    """The configured or stored token, without creating one (the CLI's lookup)."""
    server = settings.server
    if server.token is not None and server.token.get_secret_value():
        return ServerToken(_checked(server.token.get_secret_value(), "server.token"),
                           "server.token")
    if server.token_file is not None:
        return ServerToken(_read(server.token_file, required=True) or "",
                           str(server.token_file))
    path = default_token_file(settings)
    value = _read(path, required=False)
    return ServerToken(value, str(path)) if value else None


def server_token(settings: Settings) -> ServerToken:
    """The token ``grenswacht run`` serves with: found, or generated into the data directory
    on a loopback bind. Raises :class:`ConfigError` for a non-loopback bind without a
    configured token, or a token shorter than :data:`MIN_TOKEN_LENGTH`."""
    server = settings.server
    explicit = (server.token is not None and bool(server.token.get_secret_value())) or (
        server.token_file is not None)
    if not is_loopback(server.host) and not explicit:
        raise ConfigError(
            f"server.host = {server.host} is not a loopback address: set server.token or "
            "server.token_file (env GRENSWACHT_SERVER__TOKEN) first; every request then needs "
            "`Authorization: Bearer <token>` (docs/security.md)")
    found = find_token(settings)
    if found is not None:
        return found
    path = default_token_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile: use that one
        return ServerToken(_read(path, required=True) or "", str(path))
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return ServerToken(value, str(path), created=True)


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a presented token with the expected one."""
    if not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _read(path: Path, *, required: bool) -> str | None:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"server.token_file {path} does not exist") from None
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the endpoint token file {path}: {exc}") from exc
    return _checked(value, str(path)) if value or required else None


def _checked(value: str, source: str) -> str:
    if len(value) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"the endpoint token from {source} is shorter than "
                          f"{MIN_TOKEN_LENGTH} characters")
    return value
