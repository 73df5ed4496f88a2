"""The UI in a real headless Chromium (Debian's, driven by Playwright; no browser of
Playwright's own, no network but loopback): the overview, an application page and its
picture, acknowledging an alert with the token, the language switch, keyboard navigation,
labels, landmarks, table headers, contrast, and no Content-Security-Policy violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from grenswacht.web.worldmap import shapes_missing
from tests.web.conftest import ALERT_ID, APPLICATIONS, Site
from tools.browser import browser, chromium_path

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no chromium (Debian package chromium)")
PAGES = ("/", "/applications/Wikipedia", "/alerts", "/findings", "/vantage-points", "/login",
         *(() if shapes_missing() else ("/map?application=Wikipedia&bounds=1",)))
TIMEOUT_MS = 180_000  # a hang guard per browser step: each returns as soon as it can


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as instance:
        yield instance


@pytest.fixture()
def page(chromium: Any, site: Site) -> Iterator[Any]:
    context = chromium.new_context(base_url=site.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.problems = []  # console errors and CSP violations, checked by the tests
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    try:
        yield tab
    finally:
        context.close()


def test_overview_then_an_application_and_its_picture(page: Any) -> None:
    page.goto("/")
    assert page.locator("h1").inner_text() == "Overzicht"
    for name in APPLICATIONS:
        assert page.get_by_role("link", name=name, exact=True).count() >= 1
    assert page.locator("svg.share-bar").count() >= 1
    page.get_by_role("link", name="Nieuwsportaal (CloudFront)").first.click()
    page.wait_for_url("**/applications/Nieuwsportaal*")
    assert page.locator("h1").inner_text() == "Nieuwsportaal (CloudFront)"
    picture = page.locator(".picture-scroll svg.path-picture")
    picture.wait_for(state="visible")
    box = picture.bounding_box()
    assert box is not None and box["width"] > 1000 and box["height"] > 200
    assert picture.locator("g.node").count() > 10
    scroller = page.locator(".picture-scroll")
    wide = scroller.evaluate("e => e.scrollWidth > e.clientWidth")
    assert wide  # natural size, in a scrolling box
    scroller.focus()  # reachable by keyboard (tabindex=0) and scrolled with the arrows
    before = scroller.evaluate("e => e.scrollLeft")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.picture-scroll').scrollLeft > 0")
    assert scroller.evaluate("e => e.scrollLeft") > before
    assert page.problems == []


def test_acknowledge_an_alert_with_the_token(page: Any, site: Site) -> None:
    page.goto("/alerts")
    row = page.locator(f"#alert-{ALERT_ID}")
    assert "Wikipedia" in row.inner_text()
    row.get_by_role("link", name="Log in om te bevestigen").click()
    page.wait_for_url("**/login?next=*")
    page.get_by_label("Token").fill(site.token)
    page.get_by_role("button", name="Inloggen").click()
    page.wait_for_url("**/alerts")
    row = page.locator(f"#alert-{ALERT_ID}")
    row.get_by_label("Uw naam").fill("Raadsgriffie")
    row.get_by_label("Opmerking").fill("besproken")
    row.get_by_role("button", name="Bevestigen").click()
    page.wait_for_url(f"**/alerts#alert-{ALERT_ID}")
    assert "door Raadsgriffie" in page.locator(f"#alert-{ALERT_ID}").inner_text()
    stored = site.storage.query(
        "SELECT acknowledged_by, comment FROM alert_acks FINAL WHERE alert_id = {a:String}",
        {"a": ALERT_ID}).rows
    assert stored == [("Raadsgriffie", "besproken")]
    assert page.problems == []


def test_switch_the_language(page: Any) -> None:
    page.goto("/vantage-points")
    assert page.locator("html").get_attribute("lang") == "nl"
    assert page.locator("h1").inner_text() == "Meetpunten"
    page.get_by_role("navigation", name="Taal").get_by_role("link", name="English").click()
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.locator("h1").inner_text() == "Vantage points"
    page.get_by_role("link", name="Alerts", exact=True).click()  # remembered (cookie)
    page.wait_for_url("**/alerts")
    assert page.locator("h1").inner_text() == "Alerts"
    page.get_by_role("link", name="Nederlands").click()
    page.wait_for_function("() => document.documentElement.lang === 'nl'")
    assert page.locator("h1").inner_text() == "Meldingen"


def test_keyboard_navigation(page: Any) -> None:
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.evaluate("() => [document.activeElement.className, "
                         "document.activeElement.getBoundingClientRect().left]")
    assert skip[0] == "skip" and skip[1] >= 0  # the skip link comes first and shows itself
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.id === 'content'")
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => { const e = document.activeElement;
            const s = getComputedStyle(e);
            return [e.tagName, e.textContent.trim().slice(0, 40), s.outlineStyle,
                    s.outlineWidth]; }""")
        if focused[0] == "BODY":
            break  # past the last control of the page
        assert focused[2] != "none" and focused[3] != "0px", focused  # a visible focus
        reached.append(focused[1])
    assert len(reached) > 10
    assert "Filteren" in reached and any(name in reached for name in APPLICATIONS)
    # the filter form works from the keyboard alone
    page.get_by_label("Gemeente").focus()
    page.keyboard.press("ArrowDown")  # the first municipality
    page.get_by_role("button", name="Filteren").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/?municipality=*")


_AUDIT = """() => {
  const problems = [];
  const named = e => (e.labels && e.labels.length) || e.getAttribute('aria-label')
                     || e.getAttribute('aria-labelledby');
  for (const e of document.querySelectorAll('input:not([type=hidden]), select, textarea'))
    if (!named(e)) problems.push('no label: ' + (e.name || e.id));
  for (const e of document.querySelectorAll('a, button'))
    if (!e.textContent.trim() && !e.getAttribute('aria-label'))
      problems.push('no name: ' + e.outerHTML.slice(0, 80));
  for (const t of document.querySelectorAll('table'))
    if (!t.querySelector('thead th[scope=col]')) problems.push('table without headers');
  for (const role of ['header', 'nav', 'main', 'footer'])
    if (!document.querySelector(role)) problems.push('no ' + role);
  if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const background = e => { for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c; } return [255, 255, 255]; };
  let checked = 0;
  const texts = 'p, li, td, th, a, label, button, caption, dt, dd, h1, h2, h3, span';
  for (const e of document.querySelectorAll(texts)) {
    if (!e.offsetParent || !e.textContent.trim() || e.closest('svg')) continue;
    const s = getComputedStyle(e);
    const [l1, l2] = [lum(rgb(s.color)), lum(background(e))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    checked++;
    if (ratio < 4.5)
      problems.push('contrast ' + ratio.toFixed(2) + ': ' + e.textContent.trim().slice(0, 40));
  }
  return [problems, checked];
}"""


@pytest.mark.parametrize("path", PAGES)
def test_labels_landmarks_headers_contrast(page: Any, path: str) -> None:
    page.goto(path)
    problems, checked = page.evaluate(_AUDIT)
    assert checked > 10
    assert problems == []
    assert page.problems == []  # no console error, no refused inline style or script
