"""What every command module shares: settings, consoles, error exits, the format option."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from grenswacht.render import OutputFormat
from grenswacht.settings import Settings, load_settings
from schemas.bus import Bus, open_bus
from schemas.errors import GrenswachtError

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


def set_config(path: Path | None, verbose: int) -> None:
    _STATE["config"] = path
    _STATE["settings"] = None
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
