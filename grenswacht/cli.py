"""The ``grenswacht`` command. Each command group lives in ``grenswacht/commands/``;
a module there exposes ``register(app)`` and is listed in :data:`COMMAND_MODULES`."""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = (
    "grenswacht.commands.core",
    "grenswacht.commands.schedule",
    "grenswacht.commands.probe",
    "grenswacht.commands.explain",
    "grenswacht.commands.apps",
    "grenswacht.commands.consume",
    "grenswacht.commands.graph",
    "grenswacht.commands.alerts",
    "grenswacht.commands.report",
)

app = typer.Typer(
    name="grenswacht",
    help="Where do our applications' packets go, and whose law applies? (measured)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
