"""The inventory: the examples load, and every mistake is reported with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.inventory import Criticality, load_inventory
from schemas.errors import ConfigError
from tests.scheduler.conftest import EXAMPLES


def test_example_toml_and_csv_describe_the_same_applications() -> None:
    """The sheet holds the municipal applications; the TOML adds the targets the bundled
    results measure (tag voorbeeld-meetdata, not measured by the scheduler)."""
    toml = load_inventory(EXAMPLES / "apps.toml")
    sheet = load_inventory(EXAMPLES / "apps.csv")
    municipal = [a for a in toml.applications if "voorbeeld-meetdata" not in a.tags]
    examples = [a for a in toml.applications if "voorbeeld-meetdata" in a.tags]
    assert examples and all(not a.measure and not a.municipalities for a in examples)
    assert all(a.measure for a in municipal + sheet.applications)
    assert [a.name for a in municipal] == [a.name for a in sheet.applications]
    for a, b in zip(municipal, sheet.applications, strict=True):
        assert (a.hostnames, a.municipalities, a.criticality, a.tags) == (
            b.hostnames,
            b.municipalities,
            b.criticality,
            b.tags,
        )
    m365 = toml.applications[0]
    assert m365.hostnames == ["outlook.office365.com", "login.microsoftonline.com"]
    assert m365.criticality is Criticality.critical
    assert {v.name for v in toml.vantage_sets} == {"nl", "nl-overheid", "reference", "eigen"}


BAD_TOML = """\
[[vantage_set]]
name = "nl"
kind = "atlas"
countries = ["NL"]

[[application]]
name = "TOPdesk"
hostnames = ["gemeente.topdesk.net"]

[[application]]
name = "Kapot"
municipalities = ["Zwolle"]
hostnames = ["topdesk..net"]
criticality = "urgent"
"""


def test_toml_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    path.write_text(BAD_TOML)
    with pytest.raises(ConfigError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert (
        f"{path}:13: application[1].hostnames[0]: 'topdesk..net' is not a valid hostname" in message
    )
    assert f"{path}:14: application[1].criticality:" in message
    assert "'low', 'normal', 'high' or 'critical'" in message


def test_unknown_vantage_set_and_missing_source(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    path.write_text(
        '[[vantage_set]]\nname = "leeg"\nkind = "atlas"\n\n'
        '[[application]]\nname = "X"\nhostnames = ["x.example.nl"]\n'
        'vantage_sets = ["elders"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert f"{path}:1: vantage_set[0]: needs at least one of countries" in message


def test_toml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    path.write_text('[[application]]\nname = "X\n')
    with pytest.raises(ConfigError, match=r"apps.toml: not valid TOML: .*line 2"):
        load_inventory(path)


def test_csv_errors_name_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "apps.csv"
    path.write_text(
        "name,hostnames,criticality\nGoed,goed.example.nl,high\n"
        "Slecht,-slecht.example.nl,high\nOok slecht,ok.example.nl,heel hoog\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert f"{path}:3: hostnames: '-slecht.example.nl' is not a valid hostname" in message
    assert f"{path}:4: criticality:" in message


def test_csv_with_semicolons_and_unknown_column(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("name;hostnames;municipalities\nA;a.example.nl;Zwolle\n")
    assert load_inventory(good).applications[0].municipalities == ["Zwolle"]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,hostnames,owner\nA,a.example.nl,me\n")
    with pytest.raises(ConfigError, match=r"bad.csv:1: unknown column\(s\) owner"):
        load_inventory(bad)
