"""Headless Chromium for the UI tests and the screenshots: Debian's ``chromium`` driven by
Playwright's Python package (never a browser Playwright downloads itself), kept off every
network but loopback (a proxy that does not exist for everything else, no DNS, no
background traffic)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from grenswacht.pdf import ISOLATION_ARGS

CHROMIUM_ARGS = [a for a in ISOLATION_ARGS if a != "--headless"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser(**launch: Any) -> Iterator[Any]:
    """A Playwright ``Browser`` on the system Chromium."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("no chromium: install Debian's chromium (make system-deps)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS,
                                              **launch)
        try:
            yield instance
        finally:
            instance.close()
