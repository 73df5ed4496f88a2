"""Presentation of tabular data at the edge: rich tables, JSON, CSV."""

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
from rich.console import Console
from rich.table import Table


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
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


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


def print_rows(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: OutputFormat,
    *,
    title: str | None = None,
) -> None:
    if fmt is OutputFormat.json:
        console.print_json(to_json(columns, rows)) if console.is_terminal else print(
            to_json(columns, rows)
        )
        return
    if fmt is OutputFormat.csv:
        print(to_csv(columns, rows), end="")
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(plain(v)) for v in row))
    console.print(table)
