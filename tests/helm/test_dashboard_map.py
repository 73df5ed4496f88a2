"""The dashboard's findings and Geomap panels on real data: the bundled RIPE Atlas results
(Wikipedia esams, a CloudFront destination) ingested and analysed like ``grenswacht run``
does, every target's SQL run as untrusted read-only SQL with the plugin's macros expanded."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.storage import Storage
from tests.helm.test_dashboard import _dashboard, expand
from tests.web.conftest import prepare, settings_for


def _targets(title: str) -> dict[str, str]:
    (panel,) = [p for p in _dashboard()["panels"] if p["title"] == title]
    return {t["refId"]: t["rawSql"] for t in panel["targets"]}


def _run(storage: Storage, sql: str, municipality: str = "__all__") -> list[tuple[Any, ...]]:
    return storage.query(expand(sql, municipality), read_only=True).rows


@pytest.fixture(scope="module")
def analysed(session_storage: Storage, chdb_dsn: str,
             tmp_path_factory: pytest.TempPathFactory) -> Storage:
    prepare(session_storage, settings_for(tmp_path_factory.mktemp("map"), chdb_dsn))
    return session_storage


def test_findings_panels(analysed: Storage) -> None:
    stored = dict(analysed.query("SELECT kind, count() FROM findings FINAL GROUP BY kind").rows)
    assert stored  # the detectors found something in the real data
    by_kind = _run(analysed, _targets("Findings, by kind")["A"])
    assert {kind: n for kind, n, _ in by_kind} == stored
    latest = _run(analysed, _targets("Latest findings")["A"])
    assert len(latest) == min(200, sum(stored.values()))
    # only the findings of Zwolle's applications (none of the CloudFront application's)
    zwolle_apps = {str(a) for (a,) in analysed.query(
        "SELECT application FROM applications FINAL WHERE has(municipalities, 'Zwolle')").rows}
    zwolle = _run(analysed, _targets("Latest findings")["A"], "Zwolle")
    assert zwolle and all("Nieuwsportaal" not in row[4] for row in zwolle)
    assert all(set(row[4].split(", ")) & zwolle_apps for row in zwolle)


def test_geomap_places_vantage_points_and_hop_countries(analysed: Storage) -> None:
    targets = _targets("Vantage points and hops on the map")
    points = _run(analysed, targets["A"])
    located = analysed.query(
        "SELECT uniqExact(vantage_key) FROM path_verdicts FINAL WHERE vantage_key IN "
        "(SELECT vantage_key FROM vantage_points FINAL)").rows[0][0]
    assert len(points) == located > 10
    assert all(-90 <= lat <= 90 and -180 <= lon <= 180 for _, lat, lon, _, _ in points)
    countries = {country: (hops, us) for country, hops, us in _run(analysed, targets["B"])}
    assert countries["US"][1] and not countries["NL"][1]
    assert all(len(c) == 2 for c in countries)  # ISO codes, for the gazetteer lookup
    geomap = [p for p in _dashboard()["panels"] if p["type"] == "geomap"][0]
    layers = geomap["options"]["layers"]
    assert [layer["filterData"]["options"] for layer in layers] == ["A", "B"]
    assert layers[0]["location"] == {"mode": "coords", "latitude": "latitude",
                                     "longitude": "longitude"}
    assert layers[1]["location"]["mode"] == "lookup"
