"""Render a path graph: SVG for people, GraphML for tools (Gephi, yEd, NetworkX).

The SVG is laid out by hop position (columns) with no layout engine needed: vantage points
on the left, the destination on the right. Hops are filled by physical country (US red,
Netherlands orange, rest of the EU blue, elsewhere grey, unknown white), marked with the
legal operator and its country, silent hops dashed; edges out of a divergence point (a
diamond) are drawn thick and US hops get a red border, so both are visible at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import networkx as nx

from consumers.graph.build import is_placeholder
from consumers.verdicts import EU_EEA, FORWARD_ONLY_NOTE

COLUMN = 230
ROW = 64
BOX_W = 190
BOX_H = 44


def fill(country: str) -> str:
    if country == "US":
        return "#e74c3c"
    if country == "NL":
        return "#f39c12"
    if country in EU_EEA:
        return "#5dade2"
    return "#bdc3c7" if country else "#ffffff"


def _column(data: dict[str, Any]) -> int:
    hops = data.get("hops") or {0}
    return min(hops) if data.get("kind") != "vantage" else 0


def layout(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    columns: dict[int, list[str]] = {}
    for node, data in graph.nodes(data=True):
        columns.setdefault(_column(data), []).append(node)
    positions: dict[str, tuple[float, float]] = {}
    for column, nodes in columns.items():
        for row, node in enumerate(sorted(nodes)):
            positions[node] = (20 + column * COLUMN, 60 + row * ROW)
    return positions


def to_svg(graph: nx.DiGraph, title: str = "") -> str:
    positions = layout(graph)
    width = max((x for x, _ in positions.values()), default=0) + BOX_W + 40
    height = max((y for _, y in positions.values()), default=0) + BOX_H + 80
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="20" y="24" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<text x="20" y="42" fill="#555">{escape(FORWARD_ONLY_NOTE)}</text>']
    for a, b, data in graph.edges(data=True):
        (x1, y1), (x2, y2) = positions[a], positions[b]
        diverging = sum(1 for s in graph.successors(a) if not is_placeholder(s)) > 1
        stroke = "#c0392b" if graph.nodes[b].get("is_us") else "#7f8c8d"
        label = f"{data.get('count', 0)}x, {len(data.get('flows') or ())} flows"
        out.append(f'<line x1="{x1 + BOX_W}" y1="{y1 + BOX_H / 2}" x2="{x2}" '
                   f'y2="{y2 + BOX_H / 2}" stroke="{stroke}" '
                   f'stroke-width="{3 if diverging else 1}"><title>{escape(label)}</title>'
                   f'</line>')
    for node, data in graph.nodes(data=True):
        x, y = positions[node]
        country = data.get("physical_country", "")
        dashed = ' stroke-dasharray="4 3"' if data.get("kind") == "silent" else ""
        border = "#c0392b" if data.get("is_us") else "#2c3e50"
        rtt = data.get("rtt_min_ms")
        first = node if not is_placeholder(node) else "* (silent)"
        second = (f"{country or '?'} · {data.get('legal_operator') or '?'}"
                  f" ({data.get('legal_country') or '?'})")
        if data.get("kind") == "vantage":
            second = "vantage point"
        elif rtt is not None:
            second += f" · {rtt:.1f} ms"
        out.append(f'<g><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
                   f'fill="{fill(country)}" stroke="{border}" '
                   f'stroke-width="{3 if data.get("is_us") else 1}"{dashed}/>'
                   f'<text x="{x + 6}" y="{y + 17}">{escape(first)}</text>'
                   f'<text x="{x + 6}" y="{y + 34}" fill="#222">{escape(second)}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def write_svg(graph: nx.DiGraph, path: Path, title: str = "") -> None:
    path.write_text(to_svg(graph, title), encoding="utf-8")


def _scalar(value: Any) -> Any:
    if isinstance(value, set | frozenset | list | tuple):
        return ",".join(str(v) for v in sorted(value, key=str))
    if value is None:
        return ""
    return value


def write_graphml(graph: nx.DiGraph, path: Path) -> None:
    """GraphML with sets and lists flattened to comma-separated text (GraphML has no lists)."""
    plain = nx.DiGraph()
    for node, data in graph.nodes(data=True):
        plain.add_node(node, **{k: _scalar(v) for k, v in data.items() if k != "rtts"})
    for a, b, data in graph.edges(data=True):
        plain.add_edge(a, b, **{k: _scalar(v) for k, v in data.items() if k != "rtts"})
    nx.write_graphml(plain, path)
