"""`grenswacht explain` works offline with the bundled default data (on an empty store:
no stored RTTs, so only what the command line gives bounds the address)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from consumers.storage import Storage
from grenswacht.cli import app


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: Storage,
             chdb_dsn: str) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("GRENSWACHT_STORAGE", chdb_dsn)  # the session's store (one per process)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("GRENSWACHT_CONFIG", raising=False)


def test_explain_address_as_json_offline(isolated: None) -> None:
    result = CliRunner().invoke(
        app, ["explain", "91.198.174.225", "--at", "52.37,4.90", "--rtt", "2.4", "--format",
              "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    hop = document["addresses"][0]
    assert hop["proof_vantage"] == "cli" and hop["bounds"][0]["kinds"] == ["command line"]
    assert hop["physical"]["us_possible"] is False
    assert hop["physical"]["country"] != "US" and hop["physical"]["corrections"]
    assert "geoip2fast" in document["dataset_versions"]
    assert "Forward paths only" in document["note"]


def test_explain_in_words(isolated: None) -> None:
    result = CliRunner().invoke(app, ["explain", "3.248.0.1"])
    assert result.exit_code == 0, result.output
    assert "Physically: IE" in result.output
    assert "Amazon.com, Inc." in result.output and "CLOUD Act" in result.output


def test_explain_unknown_hostname_says_what_to_do(isolated: None) -> None:
    result = CliRunner().invoke(app, ["explain", "nothing.example"])
    assert result.exit_code == 2
    assert "does not resolve names" in result.output
