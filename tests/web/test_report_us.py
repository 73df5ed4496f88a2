"""The report's path pictures: with the US probes of the real data as home vantage points
(``verdicts.home_countries = ["US"]``, as a US municipality would measure), Google News and
the CloudFront destination are hosted in or routed via the US, and the report draws the
paths of exactly those applications."""

from __future__ import annotations

import re

import pytest

from grenswacht.report import build_report
from grenswacht.web.labels import PICTURED
from tests.web.conftest import Site


@pytest.fixture(scope="module")
def home_countries() -> tuple[str, ...]:
    return ("US",)


def test_pictures_of_the_applications_on_us_ground_or_routed_via_the_us(site: Site) -> None:
    stored = dict(site.storage.query("SELECT application, verdict FROM application_current"
                                     ).rows)
    pictured = sorted(name for name, verdict in stored.items() if verdict in PICTURED)
    assert pictured  # the real data has such paths from US probes
    report = build_report(site.storage, language="en")
    assert report.pictures == len(pictured)
    figures = re.findall(r'<figure class="picture">\s*<figcaption>(.*?) — ', report.html)
    assert sorted(figures) == pictured
    for svg in re.findall(r'<svg\b[^>]*class="path-picture"[^>]*>', report.html):
        assert 'role="img"' in svg
    ids = re.findall(r'<title id="([^"]+)"', report.html)
    assert len(ids) == len(set(ids)) == len(pictured)  # one id prefix per picture
