"""HTML -> PDF with headless Chromium's print-to-PDF (Debian's ``chromium``).

Chromium renders the report exactly as the browser shows the pages (the same fonts, SVG,
CSS), and it is already what the UI tests drive; WeasyPrint would add a second layout
engine with its own CSS subset and a stack of native libraries (docs/report.md).

The browser never reaches the network: when root, it runs in a network namespace of its
own (``unshare --net``: no interface but a down loopback); always with background
networking, component updates, sync and first-run off, a proxy that does not exist for
anything but loopback, no name resolution, and a throw-away profile directory. The report
refers to nothing outside itself anyway (inline CSS and SVG).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from schemas.errors import RenderError

TIMEOUT_S = 300.0
ISOLATION_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-extensions",
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost;[::1]",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
"""Flags for every headless Chromium grenswacht starts (tools/browser.py uses them too)."""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RenderError("headless Chromium is not installed: `make system-deps` (Debian "
                          "package chromium), or write the report as .html")
    return path


def _isolation() -> list[str]:
    unshare = shutil.which("unshare")
    if os.geteuid() == 0 and unshare is not None:
        return [unshare, "--net"]
    return []


def print_pdf(html: str, out: Path, *, timeout_s: float = TIMEOUT_S) -> None:
    """Write ``html`` (a self-contained document) to ``out`` as PDF. Raises
    :class:`~schemas.errors.RenderError` when Chromium is missing, fails or times out."""
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="gw-pdf-") as work:
        source = Path(work) / "report.html"
        source.write_text(html, encoding="utf-8")
        target = Path(work) / "report.pdf"
        command = [*_isolation(), browser, *ISOLATION_ARGS,
                   f"--user-data-dir={Path(work) / 'profile'}", "--no-pdf-header-footer",
                   f"--print-to-pdf={target}", source.as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout_s,  # noqa: S603
                                  check=False, cwd=work)
        except subprocess.TimeoutExpired as exc:
            raise RenderError(f"Chromium took longer than {timeout_s:g} s to print") from exc
        except OSError as exc:
            raise RenderError(f"Chromium could not run: {exc}") from exc
        if done.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise RenderError(f"Chromium could not print the PDF (exit {done.returncode}): "
                              f"{' '.join(tail)}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), out)
