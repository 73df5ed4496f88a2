"""What every column can hold, read from the DDL (``schemas/clickhouse/*.sql``) itself.

The one table of limits: :data:`COLUMNS` maps ``table -> column -> Column`` and is derived
from the ``CREATE TABLE`` and ``ALTER TABLE … ADD COLUMN`` statements of the schema files,
so there is no second, hand-kept copy of the column types. :mod:`schemas.normalize` binds
the limits it checks (``COLUMNS["traceroute_hops"]["size"].high`` …) once at import, so a
value that does not fit its column is refused there, with a reason, instead of failing the
insert of a whole batch later.

Ranges, as ClickHouse stores them:

* ``UInt8/16/32/64`` 0 .. 2^n - 1; ``Int8/16/32/64`` -2^(n-1) .. 2^(n-1) - 1; ``Bool`` 0/1;
* ``DateTime64(p)`` 1900-01-01 00:00:00 .. 2299-12-31 23:59:59 (seconds; the rows carry
  milliseconds), ``DateTime`` 1970 .. 2106, ``Date`` 1970-01-01 .. 2149-06-06;
* ``FixedString(N)`` at most N bytes; ``String`` and floats: no range (the normaliser's
  sanity limits apply);
* ``Nullable(T)`` also takes NULL; ``Array(T)`` checks every element against T;
  ``LowCardinality(T)`` is T.

Pure: reads the package's own ``.sql`` files (package data), no other I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from schemas.clickhouse import migration_files, split_statements

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _seconds(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
             second: int = 0) -> int:
    moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    return int((moment - _EPOCH).total_seconds())


_DATETIME64 = (_seconds(1900, 1, 1), _seconds(2299, 12, 31, 23, 59, 59))
_RANGES: dict[str, tuple[int, int]] = {
    **{f"UInt{n}": (0, 2**n - 1) for n in (8, 16, 32, 64, 128, 256)},
    **{f"Int{n}": (-(2 ** (n - 1)), 2 ** (n - 1) - 1) for n in (8, 16, 32, 64, 128, 256)},
    "Bool": (0, 1),
    "DateTime": (0, 2**32 - 1),
    "Date": (0, _seconds(2149, 6, 6)),
}
_WRAPPERS = ("Nullable", "LowCardinality", "Array")


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its DDL type and what it can hold."""

    table: str
    name: str
    type: str
    base: str
    """The innermost type name (``UInt32`` of ``Array(Nullable(UInt32))``)."""
    nullable: bool
    array: bool
    low: int | None
    high: int | None
    """Integer range (seconds for the date/time types); None: no range."""
    max_bytes: int | None
    """``FixedString(N)``: N."""

    def fits(self, value: object) -> bool:
        """True when ClickHouse can store ``value`` (an element, for arrays: each one)."""
        if self.array:
            if not isinstance(value, list | tuple):
                return False
            return all(self._fits_one(item) for item in value)
        return self._fits_one(value)

    def _fits_one(self, value: object) -> bool:
        if value is None:
            return self.nullable
        if self.low is not None and self.high is not None:
            if isinstance(value, dt.datetime):
                value = int(value.timestamp())
            elif self.base.startswith("DateTime") and isinstance(value, int):
                value = value // 1000  # rows carry DateTime64(3) ticks (milliseconds)
            return isinstance(value, int) and self.low <= value <= self.high
        if self.base in ("String", "FixedString"):
            if not isinstance(value, str | bytes):
                return False
            if self.max_bytes is not None:
                size = len(value.encode() if isinstance(value, str) else value)
                return size <= self.max_bytes
            return True
        if self.base.startswith("Float"):
            return isinstance(value, int | float) and not isinstance(value, bool)
        return True


def _split_top_level(text: str) -> list[str]:
    parts, depth, start, quoted = [], 0, 0, False
    for index, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _type_text(definition: str) -> str:
    """The type at the start of ``definition`` (balanced parentheses)."""
    depth = 0
    for index, char in enumerate(definition):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return definition[: index + 1]
        elif char.isspace() and depth == 0:
            return definition[:index]
    return definition


def column_of(table: str, name: str, type_text: str) -> Column:
    """A :class:`Column` from its DDL type text."""
    inner, nullable, array = type_text, False, False
    while True:
        match = re.fullmatch(r"(\w+)\((.*)\)", inner, re.S)
        if match is None or match.group(1) not in _WRAPPERS:
            break
        wrapper, inner = match.group(1), match.group(2).strip()
        nullable = nullable or wrapper == "Nullable"
        array = array or wrapper == "Array"
    base = re.match(r"\w+", inner)
    base_name = base.group(0) if base else inner
    low: int | None = None
    high: int | None = None
    if base_name == "DateTime64":
        low, high = _DATETIME64
    elif base_name in _RANGES:
        low, high = _RANGES[base_name]
    fixed = re.fullmatch(r"FixedString\((\d+)\)", inner)
    return Column(table, name, type_text, base_name, nullable, array, low, high,
                  int(fixed.group(1)) if fixed else None)


_CREATE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.`]+)\s*\(", re.I)
_ADD = re.compile(
    r"ALTER\s+TABLE\s+([\w.`]+)\s+ADD\s+COLUMN\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s+(.+)", re.I | re.S
)


def _statements() -> list[str]:
    """Every statement of the schema files, in the order they are applied (the contract's
    own reader, :mod:`schemas.clickhouse`), with trailing ``--`` comments dropped."""
    out: list[str] = []
    for _name, sql in migration_files():
        for statement in split_statements(sql):
            lines = [line.split("--", 1)[0] for line in statement.splitlines()]
            out.append("\n".join(lines).strip().rstrip(";").strip())
    return out


def read_columns() -> dict[str, dict[str, Column]]:
    """``table -> column -> Column`` for every table the schema files create."""
    tables: dict[str, dict[str, Column]] = {}
    for statement in _statements():
        if match := _CREATE.match(statement):
            table = match.group(1).strip("`")
            body, depth = statement[match.end():], 1
            for index, char in enumerate(body):
                depth += {"(": 1, ")": -1}.get(char, 0)
                if depth == 0:
                    body = body[:index]
                    break
            columns = tables.setdefault(table, {})
            for definition in _split_top_level(body):
                name, _, rest = definition.partition(" ")
                if name.upper() in ("INDEX", "PROJECTION", "CONSTRAINT"):
                    continue
                columns[name.strip("`")] = column_of(table, name.strip("`"),
                                                     _type_text(rest.strip()))
        elif match := _ADD.match(statement):
            table, name = match.group(1).strip("`"), match.group(2)
            tables.setdefault(table, {})[name] = column_of(
                table, name, _type_text(match.group(3).strip()))
    return tables


COLUMNS: dict[str, dict[str, Column]] = read_columns()


def limit(table: str, column: str) -> Column:
    """The column, or KeyError naming what the DDL lacks (a typo in a caller)."""
    try:
        return COLUMNS[table][column]
    except KeyError:
        raise KeyError(f"{table}.{column} is not in schemas/clickhouse/*.sql") from None


__all__ = ["COLUMNS", "Column", "column_of", "limit", "read_columns"]
