"""The pages over HTTP on real data: what each shows, the language choice, the acknowledge
form's protections, the raw results, the pictures, and what a page may not be tricked into
(foreign redirects, files outside static/)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlencode

import orjson
import pytest

from grenswacht.server.security import CSRF_COOKIE, SESSION_COOKIE
from tests.server.conftest import Reply, Running
from tests.web.conftest import ALERT_ID, APPLICATIONS, Site

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _client(site: Site) -> Running:
    return Running(site.app, site.url, site.token, site.storage)


def _get(site: Site, path: str, cookie: str = "") -> Reply:
    return _client(site).request("GET", path, headers={"Cookie": cookie} if cookie else None)


def _text(reply: Reply) -> str:
    return reply.body.decode()


def _cookies(reply: Reply) -> dict[str, str]:
    return dict(re.findall(r"(gw_\w+)=([^;,\s]+)", reply.headers.get("set-cookie", "")))


CURRENT = "SELECT application, verdict FROM application_current"
LABELS = {"hosted_in_us": "Gehost in de VS", "routed_via_us": "Via de VS gerouteerd",
          "us_operated_in_eu": "Amerikaans beheerd in de EU", "unknown": "Onbekend",
          "eu_hosted_eu_operated": "EU-gehost &amp; EU-beheerd", "elsewhere": "Elders"}


def test_overview_lists_every_application_with_its_stored_verdict(site: Site) -> None:
    page = _get(site, "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    html = _text(page)
    for name in APPLICATIONS:
        assert f'href="/applications/{quote(name, safe="")}"' in html
    stored = dict(site.storage.query(CURRENT).rows)  # what `grenswacht apps` shows
    assert len(set(stored.values())) >= 3  # the real data gives several classes
    for name, verdict in stored.items():
        row = re.search(rf">{re.escape(name)}</a></th>\s*<td>(.*?)</td>", html, re.S)
        assert row is not None and LABELS[verdict] in row.group(1), name
    # applications at risk (US law or US ground) come first
    risk = html.index('id="risk-heading"')
    assert html.index(">Wikipedia</a>") > risk  # US-operated in the EU
    assert html.index(">Vivacom (IPv6)</a>") > html.index('id="others-heading"')
    # coverage names why the others have no verdict
    assert "RIPE NCC</a>: tot nu toe alleen DNS-antwoorden" in html
    assert "Microsoft 365</a>: nog geen meetresultaten" in html
    assert "Nieuwsportaal (CloudFront)</a>: gemeten, maar niet vanaf de eigen meetpunten" in html
    assert 'lang="nl"' in html  # Dutch by default


def test_overview_filters(site: Site) -> None:
    html = _text(_get(site, "/?municipality=Zwolle"))
    assert "Wikipedia" in html and "RIPE NCC" in html and "Vivacom" in html
    assert "/applications/Nieuwsportaal" not in html  # Den Haag and Utrecht only
    html = _text(_get(site, "/?verdict=not_measured"))
    assert "/applications/Microsoft%20365" in html and "/applications/Wikipedia" not in html
    html = _text(_get(site, "/?criticality=low"))
    assert "/applications/Facebook" in html and "/applications/Wikipedia" not in html


def test_language_switch_is_remembered(site: Site) -> None:
    page = _get(site, "/?lang=en")
    assert 'lang="en"' in _text(page) and "Share of applications per class" in _text(page)
    chosen = _cookies(page)["gw_lang"]
    assert chosen == "en"
    again = _get(site, "/alerts", cookie=f"gw_lang={chosen}")
    assert "<h1>Alerts</h1>" in _text(again)
    assert "gw_lang" not in again.headers.get("set-cookie", "")  # nothing new to remember
    assert "<h1>Meldingen</h1>" in _text(_get(site, "/alerts?lang=nl"))


def test_application_page_shows_both_axes_dns_picture_hops(site: Site) -> None:
    html = _text(_get(site, "/applications/Wikipedia?lang=en"))
    assert "Physically: where the application is" in html
    assert "paths from home vantage points end at an address in Netherlands" in html
    assert "provably not in the US" in html  # RTT physics from Dutch probes
    svg = re.search(r'<div class="picture-scroll"[^>]*>\s*(<svg\b[^>]*>)', html)
    assert svg is not None and 'role="img"' in svg.group(1)
    assert "style=" not in svg.group(1)  # natural size; no inline style under the CSP
    width = int(re.search(r'width="(\d+)"', svg.group(1)).group(1))  # type: ignore[union-attr]
    assert width > 1000
    hops = re.findall(r"<tr(?: class=\"us\")?>\s*<td>\d+</td>\s*<td><code>([^<]+)</code>", html)
    assert len(hops) > 10 and not any(h.startswith(("10.", "192.168.")) for h in hops)
    cdn = _text(_get(site, "/applications/" + quote("Nieuwsportaal (CloudFront)") + "?lang=en"))
    assert "Amazon" in cdn and "CLOUD Act" in cdn  # the operator of its hops
    ripe = _text(_get(site, "/applications/" + quote("RIPE NCC") + "?lang=en"))
    dns = re.search(r'<table>\s*<caption id="dns-caption">.*?</table>', ripe, re.S)
    assert dns is not None and "www.ripe.net" in dns.group(0)


def test_unknown_application_is_a_page_not_found(site: Site) -> None:
    reply = _get(site, "/applications/nope?lang=en")
    assert reply.status == 404 and "There is no application called nope." in _text(reply)


def test_pictures_and_raw_results(site: Site) -> None:
    name = quote("Nieuwsportaal (CloudFront)")
    png = _get(site, f"/pictures/{name}.png")
    assert png.status == 200 and png.body.startswith(b"\x89PNG")
    svg = _get(site, f"/pictures/{name}.svg")
    assert svg.status == 200 and svg.body.startswith(b"<svg")
    assert _get(site, f"/pictures/{name}.gif").status == 404
    assert _get(site, "/pictures/" + quote("Microsoft 365") + ".svg").status == 404
    raw = _get(site, f"/raw/{name}.json")
    document = orjson.loads(raw.body)
    stored = site.storage.query(
        "SELECT count() FROM raw_results FINAL WHERE result_type = 'traceroute' AND "
        "(source, measurement_id, probe_id, timestamp) IN (SELECT source, measurement_id, "
        "probe_id, timestamp FROM path_verdicts FINAL WHERE destination_name = "
        "'d3tzl28nadlzi0.cloudfront.net')").rows[0][0]
    assert len(document["results"]) == stored > 0
    assert all(r["payload"]["type"] == "traceroute" for r in document["results"])


def test_acknowledge_needs_a_session_and_the_csrf_token(site: Site) -> None:
    client = _client(site)
    page = _get(site, "/alerts?lang=en")
    assert "Log in to acknowledge" in _text(page) and 'name="by"' not in _text(page)
    form = _get(site, "/login")
    csrf_cookie = _cookies(form)[CSRF_COOKIE]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', _text(form))
    assert csrf is not None
    fields = {"alert_id": ALERT_ID, "by": "test", "csrf_token": csrf.group(1),
              "next": "/alerts"}

    def post(path: str, data: dict[str, str], cookie: str) -> Reply:
        return client.request("POST", path, raw=urlencode(data).encode(),
                              headers={**FORM, "Cookie": cookie})

    jar = f"{CSRF_COOKIE}={csrf_cookie}"
    assert post("/alerts/acknowledge", fields, jar).status == 401  # not logged in
    login = post("/login", {"token": site.token, "csrf_token": csrf.group(1),
                            "next": "https://evil.example/"}, jar)
    assert login.status == 303 and login.headers["location"] == "/"  # local redirects only
    session = f"{jar}; {SESSION_COOKIE}={_cookies(login)[SESSION_COOKIE]}"
    assert post("/alerts/acknowledge", {**fields, "csrf_token": "0" * 64}, session
                ).status == 403
    done = post("/alerts/acknowledge", fields, session)
    assert done.status == 303 and done.headers["location"] == f"/alerts#alert-{ALERT_ID}"
    acks = site.storage.query("SELECT acknowledged_by FROM alert_acks FINAL WHERE "
                              "alert_id = {a:String}", {"a": ALERT_ID}).rows
    assert acks == [("test",)]
    assert "door test" in _text(_get(site, "/alerts", cookie=session))


def test_static_files_only_from_the_package(site: Site) -> None:
    css = _get(site, "/static/style.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    for path in ("/static/..%2Fpages.py", "/static/../pages.py", "/static/%2e%2e/data.py",
                 "/static/nothing.css"):
        assert _get(site, path).status == 404, path


def test_every_page_answers_and_names_no_external_source(site: Site) -> None:
    for path in ("/", "/alerts", "/findings", "/findings?kind=us_transit", "/vantage-points",
                 "/login", "/applications/Wikipedia"):
        reply = _get(site, path)
        assert reply.status == 200, path
        html = _text(reply)
        assert not re.search(r'(src|href)="(https?:)?//', html), path
        assert "default-src 'self'" in reply.headers["content-security-policy"]


def test_without_graphviz_the_page_still_shows(site: Site, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    from grenswacht.web import pages
    from grenswacht.web.pictures import Pictures

    monkeypatch.setattr(pages, "PICTURES", Pictures())  # nothing cached
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    reply = _get(site, "/applications/" + quote("Nieuwsportaal (CloudFront)") + "?lang=en")
    assert reply.status == 200
    html = _text(reply)
    assert "The picture could not be drawn:" in html and "Graphviz" in html
    assert 'id="hops-heading"' in html  # the rest of the page is there
