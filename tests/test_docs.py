"""Everything a user can set, send or query is documented (datasette's test_docs idea)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer.main

from grenswacht.cli import app
from schemas import topics

ROOT = Path(__file__).resolve().parent.parent
DOCS = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_settings_doc_is_generated_from_the_settings() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "settings_doc.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_settings_doc_shows_real_defaults() -> None:
    """Defaults are values or words, never this machine's paths or pydantic internals."""
    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    for wrong in ("PydanticUndefined", "(list)", "(dict)", "(computed)", "pydantic.",
                  "Optional", "(default_data_dir)", str(Path.home()) + "/"):
        assert wrong not in text, wrong
    assert "| `data_dir` | path | `$XDG_DATA_HOME/grenswacht`" in text
    assert '| `server.allowed_hosts` | list[str] | `[]` |' in text
    assert '"normal": "warning"' in text  # a factory's value, not its name
    assert "| `jurisdiction.vantage_points[].name` | str | required |" in text


def test_every_topic_is_documented() -> None:
    for topic in topics.ALL_TOPICS:
        assert f"`{topic}`" in DOCS, topic


def test_every_table_is_documented() -> None:
    model = (ROOT / "docs" / "data-model.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "schemas" / "clickhouse").glob("*.sql")):
        for table in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", path.read_text()):
            assert f"### `{table}`" in model, f"{table} ({path.name}) is not in data-model.md"


def _commands(group: typer.main.TyperGroup, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(command, typer.main.TyperGroup):
            names.extend(_commands(command, f"{full} "))
        else:
            names.append(full)
    return names


def test_every_cli_command_is_documented() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.main.TyperGroup)
    commands = _commands(group)
    assert "sql" in commands and "ingest" in commands and "run" in commands
    for command in commands:
        assert f"grenswacht {command}" in DOCS + README, f"grenswacht {command}"


def test_cli_reference_is_current(tmp_path: Path) -> None:
    typer_bin = Path(sys.executable).parent / "typer"
    out = tmp_path / "cli.md"
    subprocess.run([str(typer_bin), "grenswacht.cli", "utils", "docs", "--name", "grenswacht",
                    "--output", str(out)], check=True, capture_output=True, cwd=ROOT)
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == current, "run `make docs` to regenerate docs/cli.md"
