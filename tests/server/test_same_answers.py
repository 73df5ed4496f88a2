"""``sql``, ``verdicts``, ``graph``, ``explain``, ``findings`` and ``alerts`` give the same
answers with ``grenswacht run`` up (through its endpoint: ``RemoteStore``) and without it
(the store itself): one ``open_store()`` for every command."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from consumers.alerts.store import AlertStore
from consumers.enrich import open_enricher
from consumers.graph import read_findings, read_window
from consumers.pipeline import AnalysisContext, analyse_window
from consumers.storage import Storage
from grenswacht.cli import app as cli
from grenswacht.embedded import Embedded
from grenswacht.store import RemoteStore, open_store
from schemas.errors import StorageError
from tests.alerts.test_delivery import make_alert
from tests.server.conftest import settings_for

ATLAS = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
FILES = [ATLAS / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl",
         ATLAS / "traceroute" / "pierky_msm3082698_facebook.jsonl"]
APPS = {"wikipedia": ["wikipedia-lb.esams.wikimedia.org"], "facebook": ["66.220.156.68"]}
START, END = dt.datetime(2013, 1, 1, tzinfo=dt.UTC), dt.datetime(2017, 1, 1, tzinfo=dt.UTC)


def _cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.stdout


@pytest.fixture()
def filled(storage: Storage, chdb_dsn: str, tmp_path: Path) -> dict[str, str]:
    env = {"GRENSWACHT_DATA_DIR": str(tmp_path / "data"), "GRENSWACHT_STORAGE": chdb_dsn,
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "200"}
    _cli(env, "ingest", *map(str, FILES), "-f", "json")
    enricher, registry = open_enricher(settings_for(tmp_path, chdb_dsn).jurisdiction)
    analyse_window(storage, None, START, END, AnalysisContext(enricher, registry, APPS))
    AlertStore(storage).save_alerts([make_alert()])
    return env


COMMANDS = [
    ("sql", "SELECT probe_id, count() AS hops, max(rtt_ms) AS rtt FROM traceroute_hops "
            "WHERE destination_address = {a:String} GROUP BY probe_id ORDER BY probe_id",
     "--param", "a=66.220.156.68", "-f", "json"),
    ("sql", "SELECT * FROM path_verdicts FINAL ORDER BY timestamp, probe_id LIMIT 50",
     "-f", "json"),
    ("verdicts", "-f", "json"),
    ("verdicts", "--all", "-f", "csv"),
    ("findings", "-f", "json"),
    ("explain", "wikipedia-lb.esams.wikimedia.org", "-f", "json"),
    ("alerts", "list", "-f", "json"),
    ("alerts", "show", "a1b2c3", "-f", "json"),
    ("apps", "-f", "json"),
    ("apps", "-f", "csv"),
]


def test_every_command_answers_the_same_with_run_up_and_without(
        filled: dict[str, str], chdb_dsn: str, tmp_path: Path) -> None:
    cfg = settings_for(tmp_path, chdb_dsn)
    running = Embedded(cfg)
    running.start(only=set())
    try:
        assert isinstance(open_store(cfg), RemoteStore)
        up = [_cli(filled, *command) for command in COMMANDS]
        _cli(filled, "graph", "wikipedia-lb.esams.wikimedia.org", "--graphml",
             str(tmp_path / "up.graphml"))
    finally:
        running.stop()
    assert not isinstance(open_store(cfg), RemoteStore)
    down = [_cli(filled, *command) for command in COMMANDS]
    _cli(filled, "graph", "wikipedia-lb.esams.wikimedia.org", "--graphml",
         str(tmp_path / "down.graphml"))
    for command, a, b in zip(COMMANDS, up, down, strict=True):
        assert a == b, command
    assert len(json.loads(up[0])) > 1 and len(json.loads(up[2])) == 13  # Dutch home paths
    assert [(a["application"], a["paths"]) for a in json.loads(up[-2])] == [("wikipedia", 13)]
    assert json.loads(up[4]), "the fixture window has findings"
    graph_up = (tmp_path / "up.graphml").read_text()
    assert graph_up == (tmp_path / "down.graphml").read_text() and "<node" in graph_up
    again = Embedded(cfg)
    again.start(only=set())
    try:  # an acknowledgement goes through the write route while run holds the store
        assert "acknowledged a1b2c3" in _cli(filled, "alerts", "ack", "a1b2c3", "-m",
                                             "through run", "--by", "officer")
    finally:
        again.stop()
    shown = json.loads(_cli(filled, "alerts", "show", "a1b2c3", "-f", "json"))
    assert shown["acknowledged"]["comment"] == "through run"


def test_the_remote_store_returns_the_same_python_values(
        filled: dict[str, str], storage: Storage, chdb_dsn: str, tmp_path: Path) -> None:
    cfg = settings_for(tmp_path, chdb_dsn, max_rows=5000)
    running = Embedded(cfg)
    running.start(only=set())
    try:
        remote = open_store(cfg)
        assert isinstance(remote, RemoteStore)
        sql = ("SELECT *, toIPv4('10.0.0.1') AS ip, toInt128(-2) AS big, (1, 'a') AS pair, "
               "map('k', 1.5) AS m, inf AS i FROM hop_verdicts FINAL ORDER BY ALL LIMIT 20")
        assert remote.query(sql) == storage.query(sql)
        huge = f"toUInt256('{2**200}')"
        odd = remote.query(f"SELECT nan AS n, {huge} AS huge, toFixedString('ab', 3) AS f").rows
        assert math.isnan(odd[0][0]) and odd[0][1:] == storage.query(
            f"SELECT {huge}, toFixedString('ab', 3)").rows[0] == (2**200, b"ab\x00")
        assert read_findings(remote) == read_findings(storage)
        enricher, registry = open_enricher(cfg.jurisdiction)
        here = read_window(storage, START, END, destinations=APPS["wikipedia"],
                           enricher=enricher, registry=registry)
        there = read_window(remote, START, END, destinations=APPS["wikipedia"],
                            enricher=enricher, registry=registry)
        assert there.traces == here.traces and here.traces
        with pytest.raises(StorageError, match="server.max_rows"):
            remote.query("SELECT * FROM numbers(5001)")  # more than max_rows: no silent cut
        with pytest.raises(StorageError, match="POST /ingest"):
            remote.insert("applications", {"application": ["x"]})
    finally:
        running.stop()
