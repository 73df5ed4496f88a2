"""What the commands print: data literally, tables readable at 80 columns, every --format;
and `explain` answering from the store (every vantage point's smallest RTT, stored anycast
findings, clear errors). Real chDB store, real recorded RIPE Atlas results."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from consumers.alerts.store import AlertStore
from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.enrich.bounds import Observation, locate_address, tightest_per_vantage
from consumers.graph import anycast
from consumers.graph.findings import store_findings
from consumers.storage import Storage
from grenswacht.cli import app as cli
from grenswacht.commands import common
from grenswacht.embedded import Embedded
from grenswacht.render import MIN_COLUMN, OutputFormat, column_widths, print_rows
from grenswacht.settings import Settings
from grenswacht.store import RemoteStore, open_store
from tests.alerts.test_delivery import make_alert
from tests.graph.test_real_data import chaos_window
from tests.server.conftest import settings_for

ATLAS = Path(__file__).resolve().parent / "fixtures" / "atlas"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WIKIPEDIA = ATLAS / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl"
PROBES = sorted((ATLAS / "api").glob("pierky_*_probes_api_v2.json"))
ESAMS = "91.198.174.225"
TABLE_CHARS = set("┏┃┡│└┗┣╇━┳┓┩┛┻╋─┐┘┌┤├┼┬┴")


def _cli(env: dict[str, str], *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


@pytest.fixture()
def narrow() -> Iterator[None]:
    """The CLI's console at 80 columns (under pytest it takes COLUMNS at import)."""
    before = common.console.width
    common.console.width = 80
    try:
        yield
    finally:
        common.console.width = before


@pytest.fixture()
def env(storage: Storage, chdb_dsn: str, tmp_path: Path, narrow: None) -> dict[str, str]:
    """The CLI on the test session's store, probe positions from the recorded probe lists
    (as `make run` configures them), the Wikipedia traceroutes ingested."""
    env = {"GRENSWACHT_DATA_DIR": str(tmp_path / "data"), "GRENSWACHT_STORAGE": chdb_dsn,
           "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "GRENSWACHT_JURISDICTION__ATLAS_PROBE_FILES": json.dumps([str(p) for p in PROBES])}
    _cli(env, "ingest", str(WIKIPEDIA), "-f", "json")
    return env


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in TABLE_CHARS]


# --- explain ---------------------------------------------------------------------------


def test_explain_bounds_wikipedia_by_every_vantage_point(env: dict[str, str],
                                                         storage: Storage) -> None:
    document = json.loads(_cli(env, "explain", ESAMS, "-f", "json").stdout)
    [address] = document["addresses"]
    # what the store holds, independently: the smallest RTT of every probe that got a reply
    rows = storage.query(
        "SELECT probe_id, min(rtt_ms) FROM traceroute_hops WHERE reply_address = {a:String} "
        "AND NOT is_timeout AND rtt_ms > 0 GROUP BY probe_id", {"a": ESAMS}).rows
    smallest = {f"atlas:{p}": rtt for p, rtt in rows}
    assert len(smallest) > 30
    bounds = address["bounds"]
    assert {b["vantage"]["key"] for b in bounds} | set(
        address["unlocated_vantage_points"]) == set(smallest)
    for bound in bounds:
        assert bound["rtt_ms"] == smallest[bound["vantage"]["key"]]
    radii = [b["radius_km"] for b in bounds]
    assert radii == sorted(radii)  # tightest first
    tightest = bounds[0]
    assert address["tightest_vantage"] == tightest["vantage"]["key"]
    assert tightest["rtt_ms"] < 10 and tightest["vantage"]["country"] == "NL"
    # the geo database says US; the RTTs from Dutch probes prove it is not
    assert address["physical"]["sources"][0]["country"] == "US"
    assert address["physical"]["us_possible"] is False
    assert address["physical"]["country"] not in ("", "US")
    assert address["physical"]["corrections"]
    assert address["proof_vantage"] == tightest["vantage"]["key"]
    assert sum(b["proves_not_in_us"] for b in bounds) > len(bounds) // 2
    assert address["vantage"]["key"] == address["proof_vantage"]  # the verdict's own bound


def test_explain_in_words_and_as_csv(env: dict[str, str]) -> None:
    words = _cli(env, "explain", ESAMS).stdout
    assert "tightest bound:" in words and "NOT in the US (physics)" in words
    assert "no RTT" not in words and "Physically: US" not in words
    assert "tightest 5 of" in words and "correction:" in words
    assert all(len(line) <= 80 for line in _table_lines(words))
    rows = list(csv.DictReader(io.StringIO(_cli(env, "explain", ESAMS, "-f", "csv").stdout)))
    assert len(rows) == 1 and rows[0]["address"] == ESAMS
    assert rows[0]["us_possible"] == "False" and rows[0]["tightest_vantage"].startswith("atlas:")
    # 192.168.1.1 answered 9 probes: 9 different home routers, so nothing bounds it
    [private] = json.loads(_cli(env, "explain", "192.168.1.1", "-f", "json").stdout)[
        "addresses"]
    assert private["bounds"] == [] and private["physical"]["country"] == ""
    assert "private" in private["physical"]["note"]
    # a hostname: the addresses the store holds for it (traceroute targets here)
    by_name = json.loads(_cli(env, "explain", "Wikipedia-LB.esams.wikimedia.org.", "-f",
                              "json").stdout)
    assert by_name["target"] == "wikipedia-lb.esams.wikimedia.org"
    assert [a["address"] for a in by_name["addresses"]] == [ESAMS]


def test_explain_a_hostname_uses_its_dns_answers_only(env: dict[str, str],
                                                     storage: Storage) -> None:
    """Real DNS results for www.ripe.net carry the name servers' addresses in the
    additional section: those are not the host's addresses."""
    _cli(env, "ingest", str(ATLAS / "dns"), "-f", "json")
    answers = {str(r[0]) for r in storage.query(
        "SELECT record_data FROM dns_answers WHERE query_name = 'www.ripe.net.' AND "
        "section = 'answer' AND record_type IN ('A', 'AAAA')").rows}
    glue = {str(r[0]) for r in storage.query(
        "SELECT record_data FROM dns_answers WHERE query_name = 'www.ripe.net.' AND "
        "section = 'additional' AND record_type IN ('A', 'AAAA')").rows}
    assert answers and glue - answers
    document = json.loads(_cli(env, "explain", "www.ripe.net", "-f", "json").stdout)
    assert {a["address"] for a in document["addresses"]} == answers
    # only a CNAME in the answer: no address
    result = _cli(env, "explain", "www.yahoo.com", code=2)
    assert "no A/AAAA answer" in result.output and "fd-fp3.wg1.b.yahoo.com" in result.output
    # a CNAME chain through a CDN: the addresses at its end, the provider it names
    _cli(env, "ingest", str(ATLAS.parent / "verdicts" / "bigquery_abuf_cname_chains.jsonl"),
         "-f", "json")
    document = json.loads(_cli(env, "explain", "www.apple.com", "-f", "json").stdout)
    [chain] = document["cname_chains"]
    assert chain["chain"][:2] == ["www.apple.com", "www.apple.com.edgekey.net"]
    assert chain["operator"]["operator"] == "Akamai" and chain["operator"]["cloud_act"]
    end = {str(r[0]) for r in storage.query(
        "SELECT record_data FROM dns_answers WHERE section = 'answer' AND record_type IN "
        "('A', 'AAAA') AND trimRight(record_name, '.') = {n:String}",
        {"n": chain["chain"][-1]}).rows}
    assert end and {a["address"] for a in document["addresses"]} == end
    assert "CNAME chain www.apple.com -> www.apple.com.edgekey.net" in _cli(
        env, "explain", "www.apple.com").stdout


@pytest.mark.parametrize(("target", "message"), [
    ("", "the argument is empty"),
    ("   ", "the argument is empty"),
    ("999.1.1.1", "'999.1.1.1' is not a valid IP address"),
    ("1.2.3", "'1.2.3' is not a valid IP address"),
    ("2001:db8::zz", "is not a valid IP address"),
    ("www.example .com", "is neither an IP address nor a valid hostname"),
    ("[/x]", "is neither an IP address nor a valid hostname"),
])
def test_explain_refuses_invalid_input(env: dict[str, str], target: str, message: str) -> None:
    result = _cli(env, "explain", "--", target, code=2)
    assert message in result.output
    assert "root-servers" not in result.output and "Physically" not in result.output


def test_explain_shows_the_stored_anycast_finding(env: dict[str, str],
                                                  storage: Storage) -> None:
    """Cloudflare's DNS 173.245.58.117: real CHAOS answers from 40 probes naming AMS, CDG,
    JNB and LHR; the detector's finding is stored as the analysis stores it."""
    _results, window = chaos_window()
    [finding] = anycast.detect(window)
    store_findings(storage, [finding])
    document = json.loads(_cli(env, "explain", "173.245.58.117", "-f", "json").stdout)
    [address] = document["addresses"]
    assert [f["finding_id"] for f in address["anycast_findings"]] == [finding.finding_id]
    words = _cli(env, "explain", "173.245.58.117").stdout
    assert "anycast" in words and "AMS, CDG, JNB, LHR" in words
    # the pipeline's rule: only a physics proof that rests on more than one vantage point
    # (high confidence) makes the address anycast; then no single place is claimed
    assert address["anycast"] is (finding.confidence == "high")
    # an address without a finding has none
    other = json.loads(_cli(env, "explain", ESAMS, "-f", "json").stdout)["addresses"][0]
    assert all(f["subject"] == ESAMS for f in other["anycast_findings"])


def test_explain_answers_the_same_with_run_up(env: dict[str, str], chdb_dsn: str,
                                              tmp_path: Path) -> None:
    commands = [("explain", ESAMS, "-f", "json"), ("explain", ESAMS),
                ("findings", "-f", "csv")]
    base = settings_for(tmp_path, chdb_dsn)
    cfg = Settings(data_dir=base.data_dir, storage=chdb_dsn, bus=base.bus, server=base.server,
                   jurisdiction=JurisdictionSettings(atlas_probe_files=PROBES))
    running = Embedded(cfg)
    running.start(only=set())
    try:
        assert isinstance(open_store(cfg), RemoteStore)
        up = [_cli(env, *command).stdout for command in commands]
        status = _cli(env, "status", "-f", "csv").stdout.splitlines()
        table = _cli(env, "status").stdout
    finally:
        running.stop()
    down = [_cli(env, *command).stdout for command in commands]
    assert up == down
    assert status[0] == "key,value" and any(line.startswith("pid,") for line in status)
    assert "pid" in table and all(len(line) <= 80 for line in _table_lines(table))


def test_bounds_selection_is_per_vantage_point_and_tightest_first() -> None:
    enricher, registry = open_enricher(JurisdictionSettings(atlas_probe_files=PROBES))
    amsterdam, far = registry.resolve(3161), registry.resolve(4484)
    assert amsterdam is not None and far is not None
    seen = [Observation(far, 25.0, ("traceroute",)), Observation(amsterdam, 9.0, ("ping",)),
            Observation(amsterdam, 2.4, ("traceroute",), 3), Observation(amsterdam, 0.0)]
    best = tightest_per_vantage(seen)
    assert [(o.vantage.key, o.rtt_ms, o.kinds, o.results) for o in best] == [
        ("atlas:3161", 2.4, ("ping", "traceroute"), 4), ("atlas:4484", 25.0, ("traceroute",), 1)]
    location = locate_address(enricher, ESAMS, seen)
    assert location.tightest is not None and location.proof is not None
    assert location.verdict.record.vantage == amsterdam and location.verdict.record.rtt_ms == 2.4
    assert location.verdict.physical.us_possible is False
    private = locate_address(enricher, "192.168.1.1", [Observation(amsterdam, 0.5)])
    assert private.proof is None and private.verdict.physical.country == ""
    nothing = locate_address(enricher, ESAMS, [])
    assert nothing.tightest is None and nothing.verdict.physical.bound is None
    several = locate_address(enricher, ESAMS, seen, anycast=True)
    assert several.proof is None and several.verdict.physical.country == ""
    assert len(several.bounds) == 2


# --- data printed literally, 80 columns, --format ----------------------------------------


def test_data_is_printed_literally(env: dict[str, str]) -> None:
    sql = ("SELECT ':x: [/x]' AS \"[b]header[/b]\", '[bold red]not red[/]' AS b, "
           "':thumbs_up:' AS c")
    out = _cli(env, "sql", sql).stdout
    assert "[b]header[/b]" in out and ":x: [/x]" in out and "[bold red]not red[/]" in out
    assert ":thumbs_up:" in out and "👍" not in out and "❌" not in out
    rows = list(csv.reader(io.StringIO(_cli(env, "sql", sql, "-f", "csv").stdout)))
    assert rows == [["[b]header[/b]", "b", "c"], [":x: [/x]", "[bold red]not red[/]",
                                                   ":thumbs_up:"]]
    assert json.loads(_cli(env, "sql", sql, "-f", "json").stdout) == [
        {"[b]header[/b]": ":x: [/x]", "b": "[bold red]not red[/]", "c": ":thumbs_up:"}]
    # an error message is data too
    bad = _cli(env, "sql", "SELECT [/x]", code=2)
    assert "error:" in bad.output


def test_wide_rows_stay_readable_at_80_columns(env: dict[str, str]) -> None:
    wide = _cli(env, "sql", "SELECT * FROM traceroute_hops ORDER BY probe_id, hop LIMIT 2")
    lines = wide.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    # 31 columns do not fit 80 characters: one block per row, every column on its line
    assert sum(line.startswith("reply_address ") for line in lines) == 2
    assert any(line.startswith("destination_name ") and "wikipedia-lb.esams" in line
               for line in lines)
    narrow_query = _cli(env, "sql", "SELECT probe_id, destination_address, hop, reply_address,"
                                    " rtt_ms FROM traceroute_hops ORDER BY probe_id, hop "
                                    "LIMIT 3").stdout
    table = _table_lines(narrow_query)
    assert table and all(len(line) <= 80 for line in table)
    assert ESAMS in narrow_query  # addresses are not broken in two


def test_column_widths_never_squeeze_a_column_below_its_minimum(storage: Storage,
                                                                env: dict[str, str]) -> None:
    rows = storage.query("SELECT probe_id, destination_name, reply_address, rtt_ms "
                         "FROM traceroute_hops WHERE rtt_ms > 0 LIMIT 50").rows
    cells = [[str(v) for v in row] for row in rows]
    columns = ["probe_id", "destination_name", "reply_address", "rtt_ms"]
    widths = column_widths(80, columns, cells)
    assert widths is not None and sum(widths) + 3 * len(widths) + 1 <= 80
    assert all(w >= min(MIN_COLUMN, len(c)) for w, c in zip(widths, columns, strict=True))
    assert column_widths(40, columns * 3, [r * 3 for r in cells]) is None
    out = io.StringIO()
    print_rows(Console(file=out, width=40), columns * 3, [r * 3 for r in cells[:1]],
               OutputFormat.table, title="[/x]")
    assert "[/x] 1/1" in out.getvalue()
    assert all(len(line) <= 40 for line in out.getvalue().splitlines())


def test_findings_in_every_format(env: dict[str, str], storage: Storage) -> None:
    _results, window = chaos_window()
    found = anycast.detect(window)
    store_findings(storage, found)
    stored = {f["finding_id"]: f for f in json.loads(_cli(env, "findings", "-f", "json").stdout)}
    [cloudflare] = [stored[f.finding_id] for f in found]  # beside the Wikipedia window's
    assert cloudflare["evidence"]["site_names"] == ["AMS", "CDG", "JNB", "LHR"]
    as_csv = list(csv.DictReader(io.StringIO(_cli(env, "findings", "-f", "csv").stdout)))
    assert len(as_csv) == len(stored) and "173.245.58.117" in {r["subject"] for r in as_csv}
    assert set(as_csv[0]) == {"kind", "confidence", "destination_address", "subject",
                              "window_end", "summary"}
    table = _cli(env, "findings").stdout
    assert "173.245.58.117" in table and "JNB" in table
    assert all(len(line) <= 80 for line in _table_lines(table))
    assert "not shown at this width: window_end" in table


def test_plan_in_every_format(narrow: None) -> None:
    inventory = str(EXAMPLES / "apps.toml")
    env: dict[str, str] = {}
    doc = json.loads(_cli(env, "plan", "--dry-run", "-i", inventory, "-f", "json").stdout)
    rows = list(csv.DictReader(io.StringIO(
        _cli(env, "plan", "--dry-run", "-i", inventory, "-f", "csv").stdout)))
    assert len(rows) == len(doc["measurements"]) == 90
    assert sum(int(r["credits_per_day"]) for r in rows) == doc["credits_per_day"] == 114_440
    table = _cli(env, "plan", "--dry-run", "-i", inventory).stdout
    assert all(len(line) <= 80 for line in _table_lines(table))
    assert "credits per day: 114440" in table


def test_alerts_show_in_every_format(env: dict[str, str], storage: Storage) -> None:
    alert = make_alert()
    AlertStore(storage).save_alerts([alert])
    document = json.loads(_cli(env, "alerts", "show", alert.alert_id, "-f", "json").stdout)
    assert document["alert_id"] == alert.alert_id and document["acknowledged"] is None
    rows = list(csv.reader(io.StringIO(_cli(env, "alerts", "show", alert.alert_id, "-f",
                                            "csv").stdout)))
    assert rows[0][:3] == ["change", "vantage point", "msm"]  # the evidence, a row per reply
    assert len(rows) == 1 + len(alert.evidence)
    words = _cli(env, "alerts", "show", alert.alert_id).stdout
    assert alert.summary in words and all(len(line) <= 80 for line in _table_lines(words))
    listed = _cli(env, "alerts", "list").stdout
    assert "a1b2c3" in listed and all(len(line) <= 80 for line in listed.splitlines())


def test_probe_trace_in_every_format(narrow: None) -> None:
    """A rootless UDP Paris traceroute on the loopback interface."""
    args = ["probe", "trace", "127.0.0.1", "--allow", "127.0.0.0/8", "--paris-id", "3"]
    result = json.loads(_cli({}, *args, "-f", "json").stdout)
    rows = list(csv.DictReader(io.StringIO(_cli({}, *args, "-f", "csv").stdout)))
    assert rows and rows[0]["from"] == "127.0.0.1" and float(rows[0]["rtt_ms"]) > 0
    assert len(rows) == sum(len(hop["result"]) for hop in result["result"])
    table = _cli({}, *args).stdout
    assert "traceroute to 127.0.0.1" in table and "127.0.0.1" in table


def test_apps_at_80_columns_and_literally(env: dict[str, str], tmp_path: Path) -> None:
    """The example inventory (the one `make run` uses) over the ingested Wikipedia results;
    an application named with markup and emoji codes is printed as it is."""
    inventory = tmp_path / "apps.toml"
    inventory.write_text((EXAMPLES / "apps.toml").read_text(encoding="utf-8") + (
        '\n[[application]]\nname = "[/x] :x: [bold]markup[/bold]"\n'
        'hostnames = ["wikipedia-lb.esams.wikimedia.org"]\nmeasure = false\n'),
        encoding="utf-8")
    env = {**env, "GRENSWACHT_ATLAS__INVENTORY": str(inventory)}
    _cli(env, "ingest", str(WIKIPEDIA), "-f", "json")  # analysed with the inventory's apps
    table = _cli(env, "apps").stdout
    assert "[/x]" in table and ":x:" in table and "[bold]" in table and "❌" not in table
    lines = _table_lines(table)
    assert lines and all(len(line) <= 80 for line in lines)
    assert "Wikipedia (esams," in table and "us_operated_in_eu" in table
    assert "not shown at this width:" in table  # the columns left out are named
    rows = json.loads(_cli(env, "apps", "-f", "json").stdout)
    names = {r["application"] for r in rows}
    assert "[/x] :x: [bold]markup[/bold]" in names and "Wikipedia (esams, Amsterdam)" in names
    afas = next(r for r in rows if r["application"] == "AFAS Profit")
    assert afas["coverage"] == "no_results" and afas["why"] == "no results for its hostnames yet"
