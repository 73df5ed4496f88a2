"""``grenswacht report`` on real data: a self-contained HTML document and a PDF printed by
headless Chromium, whose text (pdftotext) names every application."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grenswacht.cli import app
from grenswacht.client import local_endpoint
from grenswacht.web.labels import PICTURED
from tests.web.conftest import APPLICATIONS, Site


def _invoke(site: Site, tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["report", *args, "--storage", site.storage.dsn],
                                env={"GRENSWACHT_DATA_DIR": str(tmp_path / "none")})
    assert result.exit_code == 0, result.output
    return result.output


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_html_report_is_self_contained_and_names_every_application(site: Site,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "raad.html"
    said = _invoke(site, tmp_path, "--out", str(out))
    assert f"{len(APPLICATIONS)} applications" in said
    html = out.read_text(encoding="utf-8")
    assert '<html lang="nl">' in html and "Waar gaat het verkeer" in html
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert not re.search(r'(src|href)="', html)  # nothing outside the document
    for name in APPLICATIONS:
        assert f'<th scope="row">{name}</th>' in html
    stored = dict(site.storage.query("SELECT application, verdict FROM application_current"
                                     ).rows)
    expected = sum(1 for verdict in stored.values() if verdict in PICTURED)
    assert len(re.findall(r'<svg\b[^>]*class="path-picture"', html)) == expected
    for name, verdict in stored.items():  # the verdict `grenswacht apps` shows, in words
        row = re.search(rf'<th scope="row">{re.escape(name)}</th><td>(.*?)</td>', html, re.S)
        assert row is not None and verdict != "" and "swatch" in row.group(1)
    # method, limits and attribution
    for text in ("Alleen heenpaden", "bron: RIPE NCC, RIPE Atlas", "GeoLite2", "CC BY-SA 4.0",
                 "Natural Earth", "geoip2fast"):
        assert text in html, text


def test_report_language_and_municipality(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "zwolle.html"
    _invoke(site, tmp_path, "--out", str(out), "--lang", "en", "--municipality", "Zwolle",
            "--no-pictures")
    html = out.read_text(encoding="utf-8")
    assert '<html lang="en">' in html and "Every application" in html
    assert "Municipality: Zwolle" in html
    assert "Wikipedia" in html and "RIPE NCC" in html
    assert "Nieuwsportaal" not in html  # not one of Zwolle's


def test_wrong_output_is_refused(site: Site, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "x.docx"),
                                      "--storage", site.storage.dsn])
    assert result.exit_code == 2 and ".html or .pdf" in result.output


@pytest.mark.skipif(shutil.which("chromium") is None or shutil.which("pdftotext") is None,
                    reason="needs chromium and pdftotext (make system-deps)")
def test_pdf_report_names_every_application(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "raad.pdf"
    _invoke(site, tmp_path, "--out", str(out))
    assert out.read_bytes().startswith(b"%PDF-")
    text = _words(subprocess.run(["pdftotext", str(out), "-"], check=True,
                                 capture_output=True, text=True, timeout=60).stdout)
    for name in APPLICATIONS:
        assert name in text, name
    assert "Methode en beperkingen" in text and "RIPE NCC, RIPE Atlas" in text
    pages = subprocess.run(["pdfinfo", str(out)], check=True, capture_output=True, text=True,
                           timeout=60).stdout
    assert int(re.search(r"Pages:\s+(\d+)", pages).group(1)) >= 2  # type: ignore[union-attr]


def test_same_report_with_run_up_and_without(site: Site, tmp_path: Path) -> None:
    """With the endpoint of ``run`` up for the data directory, the CLI reads through it
    (RemoteStore: every query as untrusted read-only SQL) and writes the same report."""
    assert local_endpoint(site.app.settings) is not None  # the CLI will find the run
    local, remote = tmp_path / "local.html", tmp_path / "remote.html"
    _invoke(site, tmp_path, "--out", str(local), "--lang", "en")
    result = CliRunner().invoke(app, ["report", "--out", str(remote), "--lang", "en"],
                                env={"GRENSWACHT_DATA_DIR": str(site.app.settings.data_dir)})
    assert result.exit_code == 0, result.output

    def without_the_time(path: Path) -> str:
        return re.sub(r"Generated [^·]+·", "", path.read_text(encoding="utf-8"))

    assert without_the_time(remote) == without_the_time(local)
