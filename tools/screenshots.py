"""Screenshots of every page of the web UI and of the council report, for docs/ and the
README (``make screenshots``): what ``make run`` shows, in headless Chromium.

Ingests the bundled real RIPE Atlas results into a fresh data directory, starts
``grenswacht run`` on a free loopback port, waits until the analysis has stored verdicts,
logs in with the token, and writes one PNG per page (1280 px wide, long pages cut at
``--max-height``), plus the first page of the PDF report. Stops the run it started.

    .venv/bin/python tools/screenshots.py docs/screenshots [--inventory FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grenswacht.web.worldmap import shapes_missing  # noqa: E402
from tools.browser import browser  # noqa: E402

GW = str(Path(sys.executable).parent / "grenswacht")
RESULTS = ["tests/fixtures/atlas/traceroute", "tests/fixtures/atlas/dns",
           "tests/fixtures/atlas/ping", "tests/fixtures/atlas/bulk_samples"]  # as `make run`
DEADLINE_S = 600


def _sql(url: str, token: str, query: str) -> list[list[object]]:
    request = urllib.request.Request(  # noqa: S310 - the loopback run this tool started
        f"{url}/sql", data=json.dumps({"sql": query}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())["rows"]  # type: ignore[no-any-return]


def _wait(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(1)
    raise SystemExit(f"gave up waiting for {what}")


def start(data: Path, inventory: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {**os.environ, "GRENSWACHT_DATA_DIR": str(data), "GRENSWACHT_SERVER__PORT": "0",
           "GRENSWACHT_ATLAS__INVENTORY": str(inventory)}
    config = ["--config", "examples/grenswacht.toml"]
    subprocess.run([GW, *config, "ingest", *RESULTS], cwd=ROOT, env=env, check=True,  # noqa: S603
                   capture_output=True)
    run = subprocess.Popen([GW, *config, "run"], cwd=ROOT, env=env,  # noqa: S603
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = data / "run.json"
    _wait(lambda: state.exists() and json.loads(state.read_text()).get("url"), "run.json")
    url = json.loads(state.read_text())["url"]
    token = (data / "server.token").read_text().strip()
    counts: list[int] = []

    def settled() -> bool:
        counts.append(int(_sql(url, token, "SELECT count() FROM path_verdicts")[0][0]))
        return len(counts) > 5 and counts[-1] > 0 and len(set(counts[-5:])) == 1

    _wait(settled, "the analysis")
    return run, url, token


def shoot(url: str, token: str, out: Path, max_height: int, application: str,
          map_application: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    app = quote(application, safe="")
    shots = [("overview", "/?lang=nl"), ("application", f"/applications/{app}"),
             ("alerts", "/alerts"), ("findings", "/findings"),
             ("vantage-points", "/vantage-points"), ("login", "/login?next=/alerts"),
             ("overview-en", "/?lang=en")]
    if not shapes_missing():
        shots.insert(5, ("map", f"/map?application={quote(map_application, safe='')}"
                                "&bounds=1&lang=nl"))
    written = []
    with browser() as chromium:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/login")
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Inloggen").click()
        page.wait_for_load_state()
        for name, path in shots:
            page.goto(f"{url}{path}")
            height = min(page.evaluate("document.documentElement.scrollHeight"), max_height)
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=True,
                            clip={"x": 0, "y": 0, "width": 1280, "height": height})
            written.append(target)
        page.goto(f"{url}/applications/{app}?lang=nl")
        top = page.evaluate("document.getElementById('picture-heading').getBoundingClientRect()"
                            ".top + window.scrollY") - 10
        target = out / "application-picture.png"
        page.screenshot(path=str(target), full_page=True,
                        clip={"x": 0, "y": top, "width": 1280, "height": 1500})
        written.append(target)
    return written


def report_page(out: Path, data: Path, inventory: Path) -> Path:
    env = {**os.environ, "GRENSWACHT_DATA_DIR": str(data),
           "GRENSWACHT_ATLAS__INVENTORY": str(inventory)}
    pdf = out / "report.pdf"
    command = [GW, "--config", "examples/grenswacht.toml", "report", "--out", str(pdf)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)  # noqa: S603
    pages = ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(pdf),
             str(out / "report")]
    subprocess.run(pages, check=True)  # noqa: S603, S607
    pdf.unlink()
    return out / "report.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--inventory", type=Path, default=ROOT / "examples/apps.toml")
    parser.add_argument("--application", default="Wikipedia (esams, Amsterdam)")
    parser.add_argument("--map-application", default="Amazon CloudFront (CDN)")
    parser.add_argument("--max-height", type=int, default=1800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-shots-") as work:
        data = Path(work) / "data"
        run, url, token = start(data, args.inventory.resolve())
        try:
            written = shoot(url, token, args.out, args.max_height, args.application,
                            args.map_application)
            written.append(report_page(args.out, data, args.inventory.resolve()))
        finally:
            run.terminate()
            run.wait(timeout=60)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
