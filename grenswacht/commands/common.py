"""What every command module shares: settings, consoles, error exits, the format option."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.text import Text

from consumers.storage import Storage
from grenswacht.render import OutputFormat
from grenswacht.settings import Settings, load_settings
from grenswacht.store import RemoteStore, open_store
from schemas.bus import Bus, open_bus
from schemas.errors import GrenswachtError
from schemas.redact import install_log_redaction, redact

console = Console()
err_console = Console(stderr=True)

_STATE: dict[str, Any] = {"config": None, "settings": None}

FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, json or csv.")
]
StorageOption = Annotated[
    str | None,
    typer.Option("--storage", help="ClickHouse DSN (chdb:///path or http(s)://…); "
                 "overrides the configured store."),
]


ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="A query parameter NAME=VALUE for {NAME:Type} in the "
                 "SQL (repeatable); a VALUE starting with [ or { is read as JSON (arrays, "
                 "maps)."),
]


def set_config(path: Path | None, verbose: int) -> None:
    _STATE["config"] = path
    _STATE["settings"] = None
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()


def open_cli_store(storage: str | None = None) -> Storage | RemoteStore:
    """The store for a command (``grenswacht.store.open_store``: the running ``run`` or the
    store itself); a failure ends the command with its message."""
    try:
        return open_store(settings(), storage)
    except GrenswachtError as exc:
        fail(str(exc))


def parse_params(values: list[str] | None) -> dict[str, Any]:
    """``--param`` values as query parameters (``NAME=VALUE``; JSON for ``[``/``{``)."""
    params: dict[str, Any] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            fail(f"--param wants NAME=VALUE, got {item!r}")
        if value.lstrip().startswith(("[", "{")):
            try:
                params[name.strip()] = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                fail(f"--param {name}: not valid JSON: {exc}")
        else:
            params[name.strip()] = value
    return params


def settings(**overrides: Any) -> Settings:
    """The settings of this invocation (config file + environment + overrides)."""
    try:
        if overrides:
            return load_settings(_STATE["config"], **overrides)
        if _STATE["settings"] is None:
            _STATE["settings"] = load_settings(_STATE["config"])
        return _STATE["settings"]  # type: ignore[no-any-return]
    except GrenswachtError as exc:
        fail(str(exc))


def open_configured_bus(cfg: Settings) -> Bus:
    """The bus named by ``cfg.bus``, with the Kafka security settings when it is Kafka."""
    return open_bus(cfg.bus, **bus_options(cfg))


def bus_options(cfg: Settings) -> dict[str, Any]:
    return {"settings": cfg.kafka} if cfg.bus.startswith("kafka:") else {}


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(Text.assemble(("error:", "bold red"), " ", redact(message)),
                      soft_wrap=True)
    raise typer.Exit(code)
