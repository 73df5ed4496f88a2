"""Path pictures drawn by Graphviz from real RIPE Atlas results: a CDN destination (Reuters,
29 probes, 1,317 nodes), Wikipedia esams (77 probes) and the menog per-flow diamond."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET  # noqa: S405 - parses our own renderer's output
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from consumers.enrich import JurisdictionSettings, open_enricher
from consumers.graph import load_balancer
from consumers.graph.build import Window, build_graph, is_placeholder
from consumers.graph.draw import (
    BALANCER,
    FILL,
    US_BORDER,
    render_png,
    render_svg,
    run_dot,
    to_dot,
)
from consumers.graph.picture import Limits, Picture, condense
from consumers.graph.picture_text import text
from consumers.graph.window import window_from_rows
from schemas.errors import RenderError
from tests.enrich.conftest import PROBE_FILES
from tests.graph.conftest import ATLAS, EVERYTHING, GRAPH, normalized, read_lines

SVG = "{http://www.w3.org/2000/svg}"
BEFORE_WIDTH_PX = 58_900  # the hand-made layout's picture of this destination (issue 15)


def _window(path: Path) -> Window:
    enricher, registry = open_enricher(JurisdictionSettings(atlas_probe_files=PROBE_FILES))
    rows = normalized(read_lines(path)).as_dicts("traceroute_hops")
    return window_from_rows(*EVERYTHING, rows, enricher=enricher, registry=registry)


@pytest.fixture(scope="module")
def cdn() -> Window:
    return _window(GRAPH / "news_reuters_cdn.jsonl.gz")


@pytest.fixture(scope="module")
def esams() -> Window:
    return _window(ATLAS / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl")


@pytest.fixture(scope="module")
def menog() -> Window:
    window = _window(GRAPH / "menog_ae_two_series.jsonl.gz")
    window.traces = [t for t in window.traces if t.destination_address == "105.203.255.77"]
    return window


def _graph(window: Window) -> nx.DiGraph:
    return build_graph(window.traces, window.mdas, window.address_evidence())


def _draw(window: Window, **options: Any) -> tuple[nx.DiGraph, str]:
    graph = _graph(window)
    svg = render_svg(graph, title="test", findings=load_balancer.detect(window),
                     vantages=window.vantages, **options)
    return graph, svg


def _nodes(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    return {str(g.findtext(f"{SVG}title")): g for g in root.iter(f"{SVG}g")
            if g.get("class") == "node"}


def _texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def _width_height(svg: str) -> tuple[int, int]:
    root = ET.fromstring(svg)  # noqa: S314
    return int(root.get("width", "0")), int(root.get("height", "0"))


def test_cdn_picture_is_bounded_readable_and_self_contained(cdn: Window) -> None:
    graph, svg = _draw(cdn)
    assert graph.number_of_nodes() > 1_000  # a CDN destination: hundreds of nodes
    width, height = _width_height(svg)
    assert 0 < width <= 4_500 and 0 < height <= 2_000, (width, height)
    assert width * 10 < BEFORE_WIDTH_PX
    root = ET.fromstring(svg)  # noqa: S314
    x0, y0, w, h = (float(v) for v in root.get("viewBox", "").split())
    assert (x0, y0) == (0, 0) and abs(w * 4 / 3 - width) <= 1 and abs(h * 4 / 3 - height) <= 1
    assert "max-width:100%" in root.get("style", "")
    # inline-ready: no prolog, no comments, no reference to anything outside the picture
    assert svg.startswith("<svg ") and "<?xml" not in svg and "<!--" not in svg
    assert not re.search(r"href|url\(|@import|@font-face|<image|<script", svg)
    assert root.findtext(f"{SVG}title") == "test"
    nodes = _nodes(svg)
    assert len(nodes) <= Limits().max_nodes
    assert not [n for n in nodes if is_placeholder(n)]  # silent hops never drawn one by one


def test_cdn_picture_says_what_it_left_out(cdn: Window) -> None:
    graph = _graph(cdn)
    picture = condense(graph, findings=load_balancer.detect(cdn), vantages=cdn.vantages)
    everything = condense(graph, findings=load_balancer.detect(cdn), vantages=cdn.vantages,
                          limits=Limits(max_nodes=10**6, max_vantages=10**6))
    drawn = picture.view.number_of_nodes()
    assert drawn + picture.hidden_nodes + picture.hidden_vantages == \
        everything.view.number_of_nodes()
    assert picture.hidden_vantages > 0 and picture.hidden_nodes > 0
    # whole paths, most-used first: every drawn node is reached from a drawn vantage point
    vantages = [n for n, d in picture.view.nodes(data=True) if d["kind"] == "vantage"]
    reached = set(vantages).union(*(nx.descendants(picture.view, v) for v in vantages))
    assert reached == set(picture.view)
    # where next hops were left out the node says so, with the traces they carried
    cut = [(n, d) for n, d in picture.view.nodes(data=True) if d.get("hidden_next")]
    assert cut
    for node, data in cut:
        left_out = [s for s in everything.view.successors(node) if s not in picture.view]
        assert data["hidden_next"] == len(left_out)
    svg = render_svg(graph, findings=load_balancer.detect(cdn), vantages=cdn.vantages)
    words = " ".join(t for g in _nodes(svg).values() for t in _texts(g))
    assert "more next hop" in words
    header = " ".join(_texts(ET.fromstring(svg)))  # noqa: S314
    assert f"{picture.hidden_vantages} vantage points and {picture.hidden_nodes} nodes" in header


def _spans(label: str) -> list[str]:
    """The text lines of one of our HTML-like labels (what Graphviz must draw whole)."""
    body = label[1:-1]
    return [html.unescape(re.sub(r"<[^>]+>", "", line)) for line in body.split("<BR/>")]


def _labels(source: str) -> dict[str, str]:
    """Node name -> HTML-like label, read back from the DOT source (pydot writes one
    statement per line)."""
    out = {}
    for line in source.splitlines():
        match = re.match(r'^"([^"]+)" \[.*?label=(<.*>),', line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def _points(ops: list[dict[str, Any]]) -> Iterator[tuple[float, float]]:
    for op in ops:
        yield from ((x, y) for x, y in op.get("points", ()))


@pytest.mark.parametrize("case", ["cdn", "esams", "menog"])
def test_every_label_is_drawn_whole_inside_its_box(case: str,
                                                   request: pytest.FixtureRequest) -> None:
    window: Window = request.getfixturevalue(case)
    picture = condense(_graph(window), findings=load_balancer.detect(window),
                       vantages=window.vantages)
    source = to_dot(picture, title=case)
    layout = json.loads(run_dot(source, "json"))
    labels = _labels(source)
    assert set(labels) == set(picture.view)
    checked = 0
    for item in layout["objects"]:
        if item.get("name") not in labels:
            continue
        xs, ys = zip(*_points(item["_draw_"]), strict=True)
        spans, size = [], 0.0
        for op in item["_ldraw_"]:
            size = op["size"] if op["op"] == "F" else size
            if op["op"] == "T":
                spans.append((op, size))
        # nothing cut: Graphviz draws every line we wrote, in full
        assert [s["text"] for s, _ in spans] == _spans(labels[item["name"]]), item["name"]
        for span, size in spans:  # and each inside the shape (ascent and descent too)
            x, y = span["pt"]
            left = {"l": x, "c": x - span["width"] / 2, "r": x - span["width"]}[span["align"]]
            assert min(xs) <= left and left + span["width"] <= max(xs), (item["name"], span)
            assert min(ys) <= y - 0.25 * size and y + 0.75 * size <= max(ys), (item["name"], span)
            checked += 1
    assert checked >= 2 * len(labels)
    # and dot had nothing to complain about (a label too large for a fixed cell, ...)
    done = subprocess.run(["dot", "-Tsvg", "-o", "/dev/null"],  # noqa: S603, S607
                          input=source.encode(), capture_output=True, check=True)
    assert done.stderr.decode() == ""


def test_the_legend_is_inside_the_picture_in_both_languages(menog: Window) -> None:
    for language in ("en", "nl"):
        _graph_, svg = _draw(menog, language=language)
        words = " ".join(_texts(ET.fromstring(svg)))  # noqa: S314
        t = text(language)
        for key in ("legend_fill", "eu", "elsewhere", "unknown", "legend_marks", "mark_us",
                    "mark_law", "mark_balancer", "mark_silent", "forward_only"):
            assert html.unescape(t[key]) in words, (language, key)
        assert "US" in words and "NL" in words
        assert t["mark_width"].split("{")[0] in words


def _shape_style(group: ET.Element) -> list[dict[str, str]]:
    return [dict(s.attrib) for s in group if s.tag in (f"{SVG}polygon", f"{SVG}path")]


def test_us_hops_and_the_load_balancer_are_marked(menog: Window) -> None:
    graph, svg = _draw(menog)
    nodes = _nodes(svg)
    us = [n for n in nodes if graph.has_node(n) and graph.nodes[n]["is_us"]]
    assert {"77.67.76.41", "213.200.119.30", "213.200.126.145"} <= set(us)
    for node in us:
        shapes = _shape_style(nodes[node])
        assert shapes[0]["fill"] == FILL["US"] and shapes[0]["stroke"] == US_BORDER
        assert shapes[0]["stroke-width"] == "3.5"
    not_us = [n for n in nodes if graph.has_node(n) and not graph.nodes[n]["is_us"]
              and graph.nodes[n]["kind"] == "interface"]
    assert not_us
    for node in not_us:
        assert _shape_style(nodes[node])[0]["fill"] != FILL["US"]
    # the per-flow balancer at 77.67.76.41: a hexagon, its branches drawn in blue
    hexagon = _shape_style(nodes["77.67.76.41"])[0]
    assert len(hexagon["points"].split()) == 7  # six corners, closed
    assert "load balancer: 2 next hops" in _texts(nodes["77.67.76.41"])
    assert "branches meet" in _texts(nodes["77.67.121.130"])
    root = ET.fromstring(svg)  # noqa: S314
    edges = {str(g.findtext(f"{SVG}title")): g for g in root.iter(f"{SVG}g")
             if g.get("class") == "edge"}
    for branch in ("213.200.119.30", "213.200.126.145"):
        path = next(edges[f"77.67.76.41->{branch}"].iter(f"{SVG}path"))
        assert path.get("stroke") == BALANCER
    # operators are boxes with "operator -> parent (legal country)"; US law is marked
    clusters = [" ".join(_texts(g)) for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"]
    assert any("GTT Communications → GTT Communications, Inc. (US)" in c and "CLOUD Act" in c
               for c in clusters), clusters


def test_silent_runs_collapse_into_one_node(cdn: Window) -> None:
    graph = _graph(cdn)
    picture = condense(graph, limits=Limits(max_nodes=10**6, max_vantages=10**6))
    silent = [n for n in graph if is_placeholder(n)]
    assert len(silent) > 300
    runs = {n: d for n, d in picture.view.nodes(data=True) if d["kind"] == "silent"}
    assert runs and not [n for n in picture.view if is_placeholder(n)]
    long_runs = [d for d in runs.values() if d["silent_max"] >= 3]
    assert long_runs
    for data in long_runs:  # one node holds the whole run of placeholders
        members = data["members"]
        assert all(is_placeholder(m) for m in members)
        assert nx.is_weakly_connected(graph.subgraph(members))
    # a run is one node: no two silent nodes follow each other
    assert not [(a, b) for a, b in picture.view.edges if a in runs and b in runs]


def test_access_hops_fold_into_their_vantage_point(esams: Window) -> None:
    graph = _graph(esams)
    # 192.168.1.1 is the first hop of many home networks: one node in the path graph
    home = [v for v in graph.predecessors("192.168.1.1") if graph.nodes[v]["kind"] == "vantage"]
    assert len(home) >= 3
    picture = condense(graph, limits=Limits(max_nodes=10**6, max_vantages=10**6))
    view = picture.view
    for vantage in home:
        assert view.nodes[vantage]["access_hops"] >= 1
        assert "192.168.1.1" not in view.successors(vantage)
    # no private address joins the paths of two vantage points right after them
    for node in view:
        before = [p for p in view.predecessors(node) if view.nodes[p]["kind"] == "vantage"]
        if len(before) > 1:
            assert not node[0].isdigit() or not node.startswith(("10.", "192.168.", "172."))


def test_png_renders_the_same_layout(menog: Window) -> None:
    graph, svg = _draw(menog)
    png = render_png(graph, title="test", findings=load_balancer.detect(menog),
                     vantages=menog.vantages)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    svg_width, svg_height = _width_height(svg)
    assert abs(width - svg_width) <= 2 and abs(height - svg_height) <= 2


def test_pictures_on_one_page_have_their_own_ids(menog: Window, esams: Window) -> None:
    ids: list[set[str]] = []
    for prefix, window in (("app-a", menog), ("app-b", esams)):
        _graph_, svg = _draw(window, id_prefix=prefix)
        found = {e.get("id", "") for e in ET.fromstring(svg).iter() if e.get("id")}  # noqa: S314
        assert found and all(i.startswith(prefix) for i in found)
        ids.append(found)
    assert not ids[0] & ids[1]


def test_failures_are_render_errors(menog: Window, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    graph = _graph(menog)
    with pytest.raises(RenderError, match="nodes, more than"):
        condense(graph, limits=Limits(max_input_nodes=10))
    picture: Picture = condense(graph)
    with pytest.raises(RenderError, match="longer than"):
        run_dot(to_dot(picture), "svg", timeout_s=1e-6)
    with pytest.raises(RenderError, match="bytes, more than"):
        run_dot("digraph { " + "a -> b; " * 300_000 + "}", "svg")
    with pytest.raises(RenderError, match="dot failed"):
        run_dot("digraph { a -> ", "svg")
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without Graphviz
    with pytest.raises(RenderError, match="not installed"):
        render_svg(graph)


def test_kinds_drawn_for_the_cdn(cdn: Window) -> None:
    picture = condense(_graph(cdn), findings=load_balancer.detect(cdn), vantages=cdn.vantages)
    kinds = Counter(d["kind"] for _n, d in picture.view.nodes(data=True))
    assert kinds["vantage"] >= 5 and kinds["silent"] >= 1
    assert kinds["destinations"] >= 1  # 89 CloudFront addresses grouped by operator/country
    assert any(d.get("divergence") for _n, d in picture.view.nodes(data=True))


_MEASURE = """<pre id="out"></pre><script>
const inside = (r, b) => r.x >= b.x - 0.5 && r.x + r.width <= b.x + b.width + 0.5
  && r.y >= b.y - 0.5 && r.y + r.height <= b.y + b.height + 0.5;
const out = {checked: 0, outside: [], font: ""};
for (const g of document.querySelectorAll("g.node, g.cluster, g.graph")) {
  const shape = g.querySelector(":scope > polygon, :scope > path");
  const box = shape.getBBox();
  for (const t of g.querySelectorAll(":scope > text")) {
    out.checked++;
    if (!inside(t.getBBox(), box)) out.outside.push(t.textContent);
  }
}
out.font = getComputedStyle(document.querySelector("text")).fontFamily;
document.getElementById("out").textContent = JSON.stringify(out);
</script>"""


def _chromium() -> list[str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium (Debian package chromium) for the browser check")
    # the page has no reference outside itself; unshare gives the browser a network
    # namespace of its own (no route anywhere) so nothing it tries can leave the machine
    isolate = [shutil.which("unshare") or "unshare", "--net"] if os.geteuid() == 0 else []
    return [*isolate, browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--proxy-server=127.0.0.1:9", "--dump-dom"]


def test_labels_fit_in_a_real_browser(cdn: Window, tmp_path: Path) -> None:
    """Inline in an HTML page, in headless Chromium with the page's own fonts: every text
    of every node, operator box and the header lies inside its shape."""
    command = _chromium()
    _graph_, svg = _draw(cdn)
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><body>{svg}{_MEASURE}</body></html>",
                    encoding="utf-8")
    done = subprocess.run([*command, page.as_uri()], capture_output=True, timeout=300,  # noqa: S603
                          check=False)
    match = re.search(rb'<pre id="out">(.*?)</pre>', done.stdout)
    assert match, done.stderr.decode()[-500:]
    result = json.loads(html.unescape(match.group(1).decode()))
    assert result["checked"] > 150
    assert result["outside"] == []
    assert result["font"].startswith("Arial")


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a hang guard for a loaded machine, not a timing assertion
def test_every_destination_of_the_bulk_corpus_draws(shared_atlas: Path) -> None:
    """160 destination graphs (menog AE/EG/SA, CloudFront, African universities): each one
    draws, within the node cap, and none is as wide as the hand-made layout's pictures."""
    files = [shared_atlas / "bulk" / "menog_internet_study" / f"traceroute_src_{c}.jsonl.gz"
             for c in ("AE", "EG", "SA")]
    files += [shared_atlas / "bulk" / "cloudfront_vs_s3_2023" / "traceroute_cloudfront.jsonl.gz",
              shared_atlas / "bulk" / "african_universities_2021" / "traceroute.jsonl.gz"]
    drawn = 0
    for path in files:
        window = _window(path)
        findings = load_balancer.detect(window)
        for destination in sorted(window.by_destination()):
            svg = render_svg(window.graph(destination), vantages=window.vantages,
                             findings=[f for f in findings
                                       if f.destination_address == destination])
            width, height = _width_height(svg)
            assert 0 < width <= 8_000 and 0 < height <= 3_000, (path.name, destination)
            assert len(_nodes(svg)) <= Limits().max_nodes
            drawn += 1
    assert drawn >= 150
