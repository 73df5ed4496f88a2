"""The one redaction helper: secrets never reach logs, errors, ``status`` or metric labels.

:func:`redact` takes any text (a DSN, a URL, an exception message that echoes one, a log
line) and masks what can carry a credential:

* the password of a URL's user info: ``http://user:SECRET@host`` -> ``http://user:***@host``
  (a bare ``http://TOKEN@host`` hides the whole user info);
* the value of credential-like query or ``key=value`` parameters (``password``, ``token``,
  ``key``, ``secret``, ``api_key``, ``access_token``, ``signature``, …), wherever they occur;
* ``Authorization: Bearer …`` / ``Basic …`` values.

It is pure and cheap; use it at every edge where text leaves the process. ``MASK`` is what
replaces a secret.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

_SENSITIVE_KEYS = (
    r"password|passwd|pwd|pass|secret|token|access_token|refresh_token|id_token|api_key|apikey"
    r"|api-key|key|auth|authorization|signature|sig|sas|credential|credentials|private_key"
    r"|x-amz-signature|x-amz-credential|x-amz-security-token"
)
# user:password@ in any scheme://…; the user part stays (it names who, not the secret)
_USERINFO_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@?#]*):"
                                r"(?P<secret>[^\s@/?#]*)@")
# scheme://TOKEN@host (no colon): the user info itself may be the secret
_USERINFO_ONLY = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<secret>[^\s:/@?#]+)@")
_PARAMETER = re.compile(
    rf"(?P<head>(?:(?<=[?&;\s,(\"'{{])|^)(?:{_SENSITIVE_KEYS})[\"']?\s*[=:]\s*[\"']?)"
    r"(?P<secret>[^\s&;,\"')]+)",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)(?P<secret>[A-Za-z0-9._~+/=-]+)",
                          re.IGNORECASE)


def redact(text: object) -> str:
    """``text`` (converted with ``str``) with every credential masked."""
    out = str(text)
    if not out:
        return out
    out = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", out)
    out = _USERINFO_ONLY.sub(
        lambda m: f"{m['head']}{MASK}@" if m["secret"] != MASK else m[0], out)
    out = _AUTH_HEADER.sub(lambda m: f"{m['head']}{MASK}", out)
    return _PARAMETER.sub(lambda m: f"{m['head']}{MASK}", out)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and any exception text) of every
    record passing a handler: install it on handlers, not loggers, so records of every
    library are covered."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactingFilter` to every handler of ``logger`` (default: the root)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
