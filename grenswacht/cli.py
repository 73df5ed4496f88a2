"""The ``grenswacht`` command. Each command group lives in ``grenswacht/commands/``;
a module there exposes ``register(app)`` and is listed in :data:`COMMAND_MODULES`."""

from __future__ import annotations

import faulthandler
import importlib
import signal

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
    # ``kill -USR1 <pid>`` writes every thread's stack to stderr: where a process that
    # seems stuck is waiting (it goes on running afterwards)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    app()


if __name__ == "__main__":
    main()
