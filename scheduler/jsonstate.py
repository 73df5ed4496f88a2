"""A small JSON state file (what was published or fetched when), written atomically.

The constructor does no I/O; :meth:`JsonState.load` reads (a missing or unreadable file is
an empty state, logged), :meth:`JsonState.save` writes a temporary file and renames it, so
a crash leaves the old or the new state, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)


class JsonState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        self.lock = threading.RLock()

    def load(self) -> JsonState:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self
        except (OSError, ValueError) as exc:
            LOG.warning("ignoring unreadable scheduler state %s: %s", self.path, exc)
            return self
        if isinstance(data, dict):
            self.data = data
        return self

    def save(self) -> None:
        with self.lock:
            text = json.dumps(self.data, indent=1, sort_keys=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
