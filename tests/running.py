"""Waiting for a ``grenswacht run`` that a test started as a process of its own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grenswacht.client import running_endpoint


def wait_running(data_dir: Path, process: subprocess.Popen[Any],
                 output: Callable[[], str] | None = None) -> None:
    """Until the ``run`` holding ``data_dir`` answers on its endpoint (run.json written and
    /healthz up). A hang guard of minutes: it returns as soon as run is up, and fails at once
    if run exits (with ``output()``, or what the process printed)."""
    deadline = time.monotonic() + 300
    while running_endpoint(data_dir) is None:
        assert process.poll() is None, output() if output else process.communicate()[1]
        assert time.monotonic() < deadline, "grenswacht run did not come up"
        time.sleep(0.2)
