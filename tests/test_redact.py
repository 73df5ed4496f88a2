"""One redaction helper (schemas/redact.py): no secret in errors, logs or CLI output."""

from __future__ import annotations

import logging
import socket

import pytest
from typer.testing import CliRunner

from consumers.storage import open_storage
from grenswacht.cli import app
from schemas.errors import StorageError
from schemas.redact import MASK, RedactingFilter, redact


@pytest.mark.parametrize(("text", "secret"), [
    ("http://user:SECRET@host:8443/db", "SECRET"),
    ("cannot open clickhouses://default:p%40ss@ch.example:9440: refused", "p%40ss"),
    ("https://TOKENVALUE@api.example/x", "TOKENVALUE"),
    ("GET https://atlas.ripe.net/api/v2/measurements/?key=abcdef123456&page=2", "abcdef123456"),
    ("wss://stream.example/?token=t0k3n-value", "t0k3n-value"),
    ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi.abc.def"),
    ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
    ("kafka sasl password=s3cr3t, user=gw", "s3cr3t"),
])
def test_secrets_are_masked(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and MASK in cleaned


def test_harmless_text_is_untouched() -> None:
    for text in ("chdb:///var/lib/grenswacht/clickhouse", "http://host:8123/grenswacht",
                 "SELECT count() FROM raw_results", "monkey=3 keys", ""):
        assert redact(text) == text
    assert redact("http://user:SECRET@h/") == "http://user:***@h/"
    assert redact(redact("http://user:SECRET@h/")) == "http://user:***@h/"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_storage_password_never_appears_in_errors() -> None:
    dsn = f"http://grenswacht:SECRET-PASSWORD@127.0.0.1:{_closed_port()}/db"
    with pytest.raises(StorageError) as caught:
        open_storage(dsn)
    assert "SECRET-PASSWORD" not in str(caught.value) and "127.0.0.1" in str(caught.value)
    result = CliRunner().invoke(app, ["sql", "--storage", dsn, "SELECT 1"])
    assert result.exit_code == 2
    assert "SECRET-PASSWORD" not in result.output and MASK in result.output


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(RedactingFilter())
    log = logging.getLogger("grenswacht.test")
    log.warning("connecting to %s", "http://u:SECRET@h:1/")
    try:
        raise RuntimeError("failed http://u:SECRET2@h:1/")
    except RuntimeError:
        log.exception("boom")
    assert "SECRET" not in caplog.text and "http://u:***@h:1/" in caplog.text
