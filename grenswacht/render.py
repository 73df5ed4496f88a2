"""Presentation of tabular data at the edge: rich tables, JSON, CSV.

Data is printed **literally**: cells, headers, titles and data lines go to rich as
:class:`~rich.text.Text`, never as markup or emoji codes, so ``:x:`` stays ``:x:`` and
``[/x]`` is text, not a broken tag. Commands print data through :func:`print_rows`,
:func:`print_json` and :func:`say`, nothing else.

A table stays readable at any width (80 columns included): every column keeps at least
:data:`MIN_COLUMN` characters (less only when nothing in it is longer), long words fold, and
a table whose columns cannot all get that much room is printed as one block per row
(``name  value`` lines, like psql's expanded display) instead of being squeezed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import uuid
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

MIN_COLUMN = 12
"""No column of a table is narrower than this (unless all it holds is shorter); a column of
prose (text of 40 characters and more) keeps :data:`MAX_UNBROKEN`."""
MAX_UNBROKEN = 20
"""A word up to this long keeps its column wide enough to stay on one line."""


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def plain(value: Any) -> Any:
    """A JSON-friendly form of a ClickHouse value."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def cell(value: Any) -> str:
    """The text of one value in a table cell (``None`` is empty; lists and maps as JSON)."""
    if value is None:
        return ""
    value = plain(value)
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def flatten(document: Any, prefix: str = "") -> list[list[Any]]:
    """``[key, value]`` rows of a nested document: map keys joined with ``.``, lists and
    scalars as values (for a table or CSV of a status document)."""
    if isinstance(document, dict) and document:
        rows: list[list[Any]] = []
        for key, value in document.items():
            rows.extend(flatten(value, f"{prefix}{key}."))
        return rows
    return [[prefix.removesuffix("."), document]]


def to_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    records = [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return orjson.dumps(records, option=orjson.OPT_INDENT_2).decode()


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [orjson.dumps(plain(v)).decode() if isinstance(v, list | tuple | dict) else plain(v)
             for v in row]
        )
    return out.getvalue()


def say(console: Console, message: str, style: str = "") -> None:
    """One line of text that may hold data, printed as it is (no markup, no emoji codes)."""
    console.print(Text(message, style=style), soft_wrap=True)


def print_json(console: Console, document: Any) -> None:
    """``document`` as indented JSON: highlighted on a terminal, plain text otherwise (so
    it can be piped); the text is the same."""
    text = orjson.dumps(plain(document), option=orjson.OPT_INDENT_2).decode()
    if console.is_terminal:
        console.print_json(text)
    else:
        console.file.write(text + "\n")
        console.file.flush()


def _min_width(texts: Sequence[str]) -> int:
    natural = _natural_width(texts)
    if natural >= 2 * MAX_UNBROKEN:  # prose (a summary, a why): keep room to read it
        return MAX_UNBROKEN
    longest_word = max((cell_len(word) for t in texts for word in t.split()), default=0)
    return min(natural, max(MIN_COLUMN, min(longest_word, MAX_UNBROKEN)))


def _natural_width(texts: Sequence[str]) -> int:
    return max((cell_len(line) for t in texts for line in t.splitlines()), default=0) or 1


def column_widths(width: int, columns: Sequence[str],
                  rows: Sequence[Sequence[str]]) -> list[int] | None:
    """The text width of every column of a table ``width`` characters wide, or ``None``
    when not every column can get its minimum. Short columns keep their natural width
    while the prose columns (summaries, reasons) can share the rest; otherwise columns
    shrink widest first (down to a common cap), never below their minimum."""
    texts = [[c, *(r[i] for r in rows)] for i, c in enumerate(columns)]
    natural = [_natural_width(t) for t in texts]
    minimum = [_min_width(t) for t in texts]
    room = width - 3 * len(columns) - 1  # padding 1 + border 1 per column, 1 for the edge
    if sum(minimum) > room:
        return None
    if sum(natural) <= room:
        return natural
    prose = [n >= 2 * MAX_UNBROKEN for n in natural]
    rest = room - sum(n for n, p in zip(natural, prose, strict=True) if not p)
    if any(prose) and rest >= sum(m for m, p in zip(minimum, prose, strict=True) if p):
        filled = iter(_fill([n for n, p in zip(natural, prose, strict=True) if p],
                            [m for m, p in zip(minimum, prose, strict=True) if p], rest))
        return [next(filled) if p else n for n, p in zip(natural, prose, strict=True)]
    return _fill(natural, minimum, room)


def _fill(natural: Sequence[int], minimum: Sequence[int], room: int) -> list[int]:
    """Widths within ``room``: each column its natural width up to a common cap (the largest
    that fits), never below its minimum."""
    low, high = 0, max(natural)
    while low < high:
        cap = (low + high + 1) // 2
        if sum(max(m, min(n, cap)) for n, m in zip(natural, minimum, strict=True)) <= room:
            low = cap
        else:
            high = cap - 1
    return [max(m, min(n, low)) for n, m in zip(natural, minimum, strict=True)]


def print_rows(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: OutputFormat,
    *,
    title: str | None = None,
    optional: Sequence[str] = (),
) -> None:
    """Rows as a table, JSON (a list of objects) or CSV (a header line, lists and maps as
    JSON). A table that does not fit the console leaves out the ``optional`` columns, in
    that order, as far as needed (and says so); if it still does not fit, each row is
    printed as a block of ``column  value`` lines."""
    if fmt is OutputFormat.json:
        print_json(console, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    if fmt is OutputFormat.csv:
        console.file.write(to_csv(columns, rows))
        console.file.flush()
        return
    cells = [[cell(v) for v in row] for row in rows]
    widths = column_widths(console.width, columns, cells)
    left_out: list[str] = []
    for name in optional:
        if widths is not None or name not in columns:
            break
        keep = [i for i, c in enumerate(columns) if c != name]
        columns = [columns[i] for i in keep]
        cells = [[row[i] for i in keep] for row in cells]
        left_out.append(name)
        widths = column_widths(console.width, columns, cells)
    if widths is not None:
        console.print(_table(columns, cells, widths, title))
        if left_out:
            say(console, f"not shown at this width: {', '.join(left_out)} (-f csv and -f "
                "json have every column)", style="dim")
    elif not cells:
        say(console, f"{title + ': ' if title else ''}no rows (columns {', '.join(columns)})")
    else:
        _print_records(console, columns, cells, title)


def _table(columns: Sequence[str], cells: Sequence[Sequence[str]], widths: Sequence[int],
           title: str | None) -> Table:
    table = Table(title=Text(title) if title else None, show_lines=False)
    for column, width in zip(columns, widths, strict=True):
        table.add_column(Text(column), overflow="fold", width=width)
    for row in cells:
        table.add_row(*(Text(v) for v in row))
    return table


def _print_records(console: Console, columns: Sequence[str], cells: Sequence[Sequence[str]],
                   title: str | None) -> None:
    """The expanded display: a rule per row, then one ``column  value`` line per column."""
    key_width = min(max(cell_len(c) for c in columns), max(MAX_UNBROKEN, console.width // 3))
    for number, row in enumerate(cells, 1):
        console.rule(Text(f"{title + ' ' if title else ''}{number}/{len(cells)}"),
                     align="left", style="dim")
        record = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False)
        record.add_column(style="bold", overflow="fold", width=key_width)
        record.add_column(overflow="fold")
        for column, value in zip(columns, row, strict=True):
            record.add_row(Text(column), Text(value))
        console.print(record)
