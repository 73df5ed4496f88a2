"""Draw a path picture with Graphviz ``dot`` (left to right): SVG for pages and reports,
PNG for documents, GraphML for tools (Gephi, yEd, NetworkX).

:func:`consumers.graph.picture.condense` decides what is drawn; this module writes it as
DOT (through ``pydot``), runs ``dot`` as a subprocess with a timeout (the seam: its
failures become :class:`~schemas.errors.RenderError`) and cleans the SVG so a page can
inline it: no XML prolog or comments, ids prefixed (several pictures on one page), a
``viewBox`` and a width in px (the page scales it: ``max-width:100%``), a ``<title>`` for
screen readers, and a font stack of common system fonts (no web font, no external
reference). Graphviz sizes every box to its label with Liberation Sans, metric-compatible
with Arial, so labels fit in a browser as well.

Inside every picture: a header (title, forward-paths-only note, what was left out) and a
legend: fill = physical country (US / NL / other EU-EEA / elsewhere / unknown); a thick
dark-red border = physically in the US; a double border = US law (CLOUD Act); a hexagon =
a load balancer splits the paths (blue links: its branches); dashed = silent hops; line
width = traces per link. Operators are boxes around their interfaces, labelled
"operator -> parent (legal country)".
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import pydot

from consumers.enrich.vantage import Vantage
from consumers.graph.picture import (
    Limits,
    Picture,
    condense,
    country_code,
    legal_us,
    operator_key,
)
from consumers.graph.picture_text import text
from consumers.verdicts import EU_EEA
from schemas.errors import RenderError
from schemas.findings import Finding

FONT = "Arial"  # fontconfig maps it to Liberation Sans (Debian fonts-liberation)
FONT_STACK = "Arial,'Liberation Sans',Helvetica,sans-serif"
US_BORDER = "#8b0000"
BALANCER = "#1f5fbf"
FILL = {"US": "#e8544e", "NL": "#f5a623", "EU": "#8ab8e6", "other": "#d9d9d9", "": "#ffffff"}
MAX_DOT_BYTES = 2_000_000  # what condense() can produce is far smaller; refuse the rest
TIMEOUT_S = 30.0
FORMATS = ("svg", "png", "json")  # what run_dot asks dot for


def fill(country: str) -> str:
    """Fill colour of a physical country (the legend's first row)."""
    if country in ("US", "NL", ""):
        return FILL[country]
    return FILL["EU"] if country in EU_EEA else FILL["other"]


def _q(name: str) -> str:
    """A DOT id: always quoted, so addresses and ``atlas:1`` are never read as ports."""
    return '"' + name.replace("\\", "/").replace('"', "'") + '"'


def _e(value: object) -> str:
    return html.escape(str(value).replace("\\", "/"), quote=True)


def _lines(first: str, rest: Iterable[str], note: str = "") -> str:
    parts = [f"<B>{_e(first)}</B>", *(_e(line) for line in rest if line)]
    if note:
        parts.append(f'<FONT COLOR="#555555" POINT-SIZE="9">{_e(note)}</FONT>')
    return "<" + "<BR/>".join(parts) + ">"


def _traces(t: Mapping[str, str], n: int) -> str:
    return t["traces_one"] if n == 1 else t["traces"].format(n=n)


def _node_label(node: str, data: Mapping[str, Any], t: Mapping[str, str]) -> str:
    kind = data["kind"]
    country = country_code(data.get("physical_country"))
    rtt = data.get("rtt_min_ms")
    where = " · ".join(p for p in (country or "?", f"{rtt:.1f} ms" if rtt is not None else "")
                       if p)
    hidden = data.get("hidden_next")
    note = t["hidden_next" if hidden != 1 else "hidden_next_one"].format(
        n=hidden, traces=_traces(t, int(data.get("hidden_traces") or 0))) if hidden else ""
    marks = []
    if data.get("divergence"):
        mode = str(data.get("balancer_mode") or "").replace("_", "-")
        marks.append(t["balancer"].format(mode=mode, n=data["divergence"]))
    if data.get("convergence"):
        marks.append(t["branches_meet"])
    if kind == "vantage":
        access = int(data.get("access_hops") or 0)
        folded = t["access" if access != 1 else "access_one"].format(n=access)
        return _lines(node, [t["vantage"].format(country=country or "?"),
                             folded if access else ""], note)
    if kind == "silent":
        low, high = int(data.get("silent_min") or 1), int(data.get("silent_max") or 1)
        span = str(low) if low == high else f"{low}-{high}"
        return _lines(t["silent"].format(n=span) if high > 1 else t["silent_one"],
                      [t["after"].format(address=node.removeprefix("silent hops after "))],
                      note)
    if kind == "chain":
        members = data["members"]
        chain = t["chain"] if operator_key(data)[0] else t["chain_unknown"]
        return _lines(chain.format(n=len(members)),
                      [f"{members[0]} … {members[-1]}", where, *marks], note)
    if kind == "destinations":
        return _lines(t["destinations"].format(n=len(data["members"])),
                      [country or "?", *marks], note)
    first = node
    rest = [where, *marks]
    if kind == "destination":
        rest.insert(0, t["destination"])
    return _lines(first, rest, note)


def _node_attributes(data: Mapping[str, Any]) -> dict[str, Any]:
    kind = data["kind"]
    attributes: dict[str, Any] = {
        "shape": "hexagon" if data.get("divergence") else "box",
        "style": "rounded,filled" if not data.get("divergence") else "filled",
        "fillcolor": fill(country_code(data.get("physical_country"))),
        "color": "#333333", "penwidth": 1,
    }
    if data.get("divergence"):
        attributes["margin"] = "0.02,0"
    if kind == "silent":
        attributes.update(style="rounded,dashed,filled", fillcolor="#ffffff",
                          color="#777777", fontcolor="#444444")
    if kind in ("destination", "destinations"):
        attributes["penwidth"] = 2
    if data.get("is_us"):
        attributes.update(color=US_BORDER, penwidth=3.5)
    if legal_us(data):
        # rounded boxes cannot have two peripheries: a US-law box is square-cornered
        attributes.update(color=US_BORDER, peripheries=2,
                          style=attributes["style"].replace("rounded,", ""))
    return attributes


def _cluster_label(key: tuple[str, str, str], t: Mapping[str, str]) -> str:
    operator, parent, country = key
    owner = f"{operator} → {parent}" if parent and parent != operator else operator
    text_ = f"{owner} ({country or '?'})"
    if country == "US":
        return (f'<<FONT COLOR="{US_BORDER}"><B>{_e(text_)}</B> · '
                f'{_e(t["cloud_act"])}</FONT>>')
    return f"<<B>{_e(text_)}</B>>"


def _key(colour: str, label: str, glyph: str = "■") -> str:
    """One legend entry: a coloured glyph (■ □ — are in Arial and every system's
    fallback fonts) and its meaning."""
    return f'<FONT COLOR="{colour}" POINT-SIZE="16">{glyph}</FONT> {_e(label)}   '


def _header(picture: Picture, title: str, t: Mapping[str, str]) -> str:
    """The graph label: title, notes and the legend (one HTML-like table; each row is one
    text cell, so the legend does not depend on column widths)."""
    rows = [f'<FONT POINT-SIZE="14"><B>{_e(title)}</B></FONT>'] if title else []
    notes = [t["forward_only"], t["drawn"].format(
        drawn=picture.view.number_of_nodes(), nodes=picture.input_nodes)]
    if picture.hidden_vantages or picture.hidden_nodes:
        notes.append(t["left_out"].format(vantages=picture.hidden_vantages,
                                          nodes=picture.hidden_nodes))
    rows += [_e(note) for note in (*notes, *picture.notes)]
    rows.append(f'<B>{_e(t["legend_fill"])}</B>   ' + _key(FILL["US"], "US")
                + _key(FILL["NL"], "NL") + _key(FILL["EU"], t["eu"])
                + _key(FILL["other"], t["elsewhere"]) + _key("#333333", t["unknown"], "□"))
    rows.append(f'<B>{_e(t["legend_marks"])}</B>   ' + _key(US_BORDER, t["mark_us"])
                + _key(US_BORDER, t["mark_law"], "□") + _key(BALANCER, t["mark_balancer"], "—")
                + _key("#777777", t["mark_silent"], "- -")
                + _key("#555555", t["mark_width"].format(n=picture.max_count), "—"))
    cells = "".join(f'<TR><TD ALIGN="LEFT">{row}</TD></TR>' for row in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="1">{cells}</TABLE>>'


def to_dot(picture: Picture, *, title: str = "", id_prefix: str = "path",
           language: str = "en") -> str:
    """The DOT source of a picture (what :func:`render_svg` hands to ``dot``)."""
    t = text(language)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", id_prefix) or "path"
    dot = pydot.Dot(_q(prefix), graph_type="digraph", rankdir="LR", id=_q(prefix),
                    fontname=FONT, fontsize=11, nodesep=0.12, ranksep=0.3,
                    labelloc="t", labeljust="l", label=_header(picture, title, t),
                    outputorder="edgesfirst", newrank="true")
    dot.set_node_defaults(fontname=FONT, fontsize=11, margin="0.08,0.06")
    dot.set_edge_defaults(arrowsize=0.6, color="#666666")
    view = picture.view
    order = sorted(view, key=lambda n: (min(view.nodes[n].get("hops") or [0]), n))
    ids = {node: f"{prefix}-n{i}" for i, node in enumerate(order)}
    clusters: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for node in order:
        data = view.nodes[node]
        key = operator_key(data)
        if key[0] and data["kind"] != "vantage":
            clusters[key].append(node)
        dot.add_node(pydot.Node(_q(node), id=ids[node], label=_node_label(node, data, t),
                                **_node_attributes(data)))
    sources = pydot.Subgraph(rank="source")  # every vantage point in the first column
    for node in order:
        if view.nodes[node]["kind"] == "vantage":
            sources.add_node(pydot.Node(_q(node)))
    dot.add_subgraph(sources)
    for i, (key, members) in enumerate(sorted(clusters.items())):
        cluster = pydot.Cluster(f"c{i}", id=_q(f"{prefix}-c{i}"), label=_cluster_label(key, t),
                                style="rounded", color="#999999", fontname=FONT, fontsize=10,
                                labeljust="l", margin=6)
        for node in members:
            cluster.add_node(pydot.Node(_q(node)))
        dot.add_subgraph(cluster)  # type: ignore[arg-type]  # a Cluster is a subgraph
    top = picture.max_count
    for i, (a, b, data) in enumerate(sorted(view.edges(data=True), key=lambda e: e[:2])):
        count = int(data["count"])
        attributes: dict[str, Any] = {
            "id": f"{prefix}-e{i}", "penwidth": round(0.8 + 5.2 * (count / top) ** 0.5, 2)}
        if view.nodes[b].get("is_us"):
            attributes["color"] = US_BORDER
        if data.get("load_balanced"):  # the US is marked on the hop itself
            attributes["color"] = BALANCER
        dot.add_edge(pydot.Edge(_q(a), _q(b), **attributes))
    return str(dot.to_string())


def run_dot(source: str, fmt: str, *, timeout_s: float = TIMEOUT_S,
            dpi: int | None = None) -> bytes:
    """``dot -T<fmt>`` on ``source``. Missing Graphviz, a failure, a timeout or a source
    larger than :data:`MAX_DOT_BYTES` raise :class:`~schemas.errors.RenderError`."""
    if fmt not in FORMATS:
        raise RenderError(f"unknown picture format {fmt}: use {', '.join(FORMATS)}")
    data = source.encode("utf-8")
    if len(data) > MAX_DOT_BYTES:
        raise RenderError(f"the picture's DOT source is {len(data):,} bytes, more than "
                          f"{MAX_DOT_BYTES:,}: draw fewer nodes (Limits.max_nodes)")
    executable = shutil.which("dot")
    if executable is None:
        raise RenderError("Graphviz's dot is not installed: `make system-deps` (Debian "
                          "package graphviz)")
    command = [executable, f"-T{fmt}"] + ([f"-Gdpi={dpi}"] if dpi else [])
    try:
        done = subprocess.run(command, input=data, capture_output=True,  # noqa: S603
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"Graphviz dot took longer than {timeout_s:g} s") from exc
    except OSError as exc:
        raise RenderError(f"Graphviz dot could not run: {exc}") from exc
    if done.returncode != 0 or not done.stdout:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RenderError(f"Graphviz dot failed (exit {done.returncode}): {' '.join(tail)}")
    return done.stdout


_ROOT = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"\s+viewBox="([^"]+)"')


def _inline(svg: str, title: str, prefix: str) -> str:
    """Graphviz's SVG made fit to inline in a page (see the module docstring)."""
    start = svg.find("<svg")
    if start < 0:
        raise RenderError("Graphviz dot wrote no SVG")
    svg = re.sub(r"<!--.*?-->\s*", "", svg[start:], flags=re.S)
    match = _ROOT.match(svg)
    if match is None:
        raise RenderError("Graphviz dot wrote an SVG root this renderer does not know")
    width, height = (round(float(v) * 4 / 3) for v in match.groups()[:2])
    root = (f'<svg width="{width}" height="{height}" viewBox="{match.group(3)}" '
            f'role="img" aria-labelledby="{prefix}-title" class="path-picture" '
            f'style="max-width:100%;height:auto" font-family="{FONT_STACK}"')
    svg = root + svg[match.end():]
    svg = re.sub(r'font-family="[^"]*"', f'font-family="{FONT_STACK}"', svg)
    svg = svg.replace(f"<title>{prefix}</title>\n", "", 1)  # the graph's name, not a title
    close = svg.index(">") + 1
    return (svg[:close] + f'\n<title id="{prefix}-title">{_e(title or prefix)}</title>'
            + svg[close:]).strip() + "\n"


def render_svg(
    graph: nx.DiGraph,
    *,
    title: str = "",
    findings: Iterable[Finding] = (),
    vantages: Mapping[str, Vantage] | None = None,
    limits: Limits | None = None,
    language: str = "en",
    id_prefix: str = "path",
    timeout_s: float = TIMEOUT_S,
) -> str:
    """The picture of a path graph as one ``<svg>`` element (no XML prolog), ready to
    inline in HTML or to write to a file. Give each picture on a page its own
    ``id_prefix``. ``findings`` mark load balancers, ``vantages`` give vantage points
    their country. Raises :class:`~schemas.errors.RenderError`."""
    picture = condense(graph, findings=findings, vantages=vantages, limits=limits)
    source = to_dot(picture, title=title, id_prefix=id_prefix, language=language)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", id_prefix) or "path"
    return _inline(run_dot(source, "svg", timeout_s=timeout_s).decode("utf-8"), title, prefix)


def render_png(
    graph: nx.DiGraph,
    *,
    title: str = "",
    findings: Iterable[Finding] = (),
    vantages: Mapping[str, Vantage] | None = None,
    limits: Limits | None = None,
    language: str = "en",
    dpi: int = 96,
    timeout_s: float = TIMEOUT_S,
) -> bytes:
    """The same picture as PNG bytes (``dot -Tpng``; ``dpi`` 96 = 1 px per CSS px)."""
    picture = condense(graph, findings=findings, vantages=vantages, limits=limits)
    source = to_dot(picture, title=title, language=language)
    return run_dot(source, "png", timeout_s=timeout_s, dpi=dpi)


def write_svg(graph: nx.DiGraph, path: Path, **options: Any) -> None:
    """:func:`render_svg` written to ``path`` (a standalone SVG file: UTF-8 needs no XML
    declaration)."""
    path.write_text(render_svg(graph, **options), encoding="utf-8")


def write_png(graph: nx.DiGraph, path: Path, **options: Any) -> None:
    path.write_bytes(render_png(graph, **options))


def _scalar(value: Any) -> Any:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items(), key=lambda i: str(i[0])))
    if isinstance(value, set | frozenset | list | tuple):
        return ",".join(str(v) for v in sorted(value, key=str))
    if value is None:
        return ""
    return value


def write_graphml(graph: nx.DiGraph, path: Path) -> None:
    """GraphML with sets and lists flattened to comma-separated text (GraphML has no
    lists) and per-vantage counts as ``key=count`` pairs. The full graph, not condensed."""
    plain = nx.DiGraph()
    for node, data in graph.nodes(data=True):
        plain.add_node(node, **{k: _scalar(v) for k, v in data.items() if k != "rtts"})
    for a, b, data in graph.edges(data=True):
        plain.add_edge(a, b, **{k: _scalar(v) for k, v in data.items() if k != "rtts"})
    nx.write_graphml(plain, path)
