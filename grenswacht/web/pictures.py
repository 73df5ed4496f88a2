"""The path picture of an application, for its page and the council report.

The picture is the path graph of the stored traceroutes and MDA results towards the
application's hostnames and addresses (``consumers.graph``), drawn by Graphviz
(``consumers.graph.draw``: condensed, legend inside). Drawing blocks for up to a second on
``dot``: call these functions from a worker thread in async code. A small cache keeps the
latest pictures, keyed by what they show (application, language and the newest stored
result they are drawn from), so a page reload does not run ``dot`` again.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consumers.graph import read_window
from consumers.graph.build import Window, build_graph
from consumers.graph.draw import render_png, render_svg
from consumers.graph.load_balancer import detect as detect_balancers
from grenswacht.web.data import ApplicationState
from schemas.store import Store

EVERYTHING = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
CACHE_SIZE = 32
_ROOT_STYLE = re.compile(r'^(<svg\b[^>]*?)\s+style="[^"]*"')


@dataclass(frozen=True, slots=True)
class Drawing:
    window: Window
    title: str


def _targets(state: ApplicationState) -> list[str]:
    return sorted({h.lower().rstrip(".") for h in state.hostnames} | set(state.addresses))


def _stamp(store: Store, targets: list[str]) -> Any:
    return store.query(
        "SELECT max(timestamp), count() FROM traceroute_hops WHERE hop = 1 AND "
        "(destination_address IN {t:Array(String)} OR "
        "lower(trimRight(destination_name, '.')) IN {t:Array(String)})", {"t": targets}).rows[0]


def drawing(store: Store, state: ApplicationState) -> Drawing | None:
    """The window of every stored result towards the application (None: nothing stored)."""
    targets = _targets(state)
    if not targets:
        return None
    window = read_window(store, EVERYTHING, dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                         destinations=targets)
    if not window.traces and not window.mdas:
        return None
    return Drawing(window, f"{state.application}: {len(window.traces)} traceroutes, "
                           f"{len(window.mdas)} MDA")


def _render(draw: Drawing, fmt: str, language: str, id_prefix: str) -> str | bytes:
    window = draw.window
    graph = build_graph(window.traces, window.mdas, window.address_evidence())
    options: dict[str, Any] = {"title": draw.title, "findings": detect_balancers(window),
                               "vantages": window.vantages, "language": language}
    if fmt == "png":
        return render_png(graph, **options)
    return render_svg(graph, id_prefix=id_prefix, **options)


class Pictures:
    """Pictures of applications, cached by (application, format, language, newest result)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._cache: OrderedDict[tuple[Any, ...], str | bytes | None] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: tuple[Any, ...], make: Callable[[], str | bytes | None]
             ) -> str | bytes | None:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = make()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return value

    def picture(self, store: Store, state: ApplicationState, fmt: str, language: str,
                id_prefix: str = "path") -> str | bytes | None:
        """The picture as an inline ``<svg>`` (``fmt="svg"``) or PNG bytes; None when
        nothing was measured towards the application."""
        key = (state.application, fmt, language, id_prefix, *_stamp(store, _targets(state)))

        def make() -> str | bytes | None:
            draw = drawing(store, state)
            return None if draw is None else _render(draw, fmt, language, id_prefix)

        return self._get(key, make)


def for_page(svg: str) -> str:
    """An inline picture shown at its natural size in a scrolling box: without the root's
    ``style`` attribute (it would shrink it to the page width; the page's Content Security
    Policy refuses inline styles anyway)."""
    return _ROOT_STYLE.sub(r"\1", svg, count=1)
