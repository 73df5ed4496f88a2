"""Which SQL from outside may run: exactly one read-only statement, checked on the tree
ClickHouse's own parser builds.

Why ClickHouse's parser and not sqlglot: the check must see the statement exactly as the
engine that runs it will. ``SELECT parseQueryToJSON({q:String})`` hands the text to the
engine as *data* (a bound parameter: nothing is executed) and returns ClickHouse's AST as
JSON; a multi-statement text is a syntax error there ("Multi-statements are not allowed").
sqlglot's ClickHouse dialect tokenises differently (``$$…$$``, comments, escapes), falls back
to an opaque "Command" for ``SHOW``/``EXPLAIN`` and cannot parse ``EXISTS``: a parser
differential is exactly where an injection hides. The few statements ``parseQueryToJSON``
cannot serialise (``DESCRIBE``, ``EXISTS``, ``SHOW CREATE``) are accepted only in the exact
canonical form ``formatQuerySingleLine`` gives for a plain table name.

The check is the first line; the engine is the second: the statement then runs on a
session with ``readonly=1`` (consumers/storage.py), which refuses every write, every
``SETTINGS`` change and table functions such as ``file``/``url``/``remote``. The check is
still needed: in chDB ``readonly=1`` does not stop ``INTO OUTFILE`` nor the scalar
``file('/proc/self/environ')`` function (both tested in tests/test_sql_guard.py).

This module is pure: :func:`check_statement` takes the parsed tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from schemas.errors import QueryError

ALLOWED_STATEMENTS = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery",
    "ShowTablesQuery", "ShowColumnsQuery", "ShowIndexesQuery", "ExplainQuery",
})
"""Top-level statements (ClickHouse AST node types) that only read."""

ALLOWED_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries",
    "primes", "values", "view", "null", "generaterandom", "merge",
})
"""Table functions that only compute rows or read tables of this store (lower case).
Everything else is refused, in particular whatever touches files, processes or the
network: ``file``, ``url``, ``s3*``, ``remote*``, ``cluster*``, ``mysql``, ``postgresql``,
``executable``, ``hdfs``, ``jdbc``, ``odbc``, ``sqlite``, ``mongodb``, ``redis``,
``azureBlobStorage``, ``gcs``, ``iceberg*``, ``deltaLake*``, ``hudi*``, ``input``,
``python`` (chDB: objects of this process), ``dictionary``, ``loop``, ``format``, …"""

DENIED_FUNCTIONS = frozenset({"file", "logtrace"})
"""Ordinary (scalar) functions refused anywhere, lower case: ``file(path)`` reads any file
of the host even with ``readonly=1``; ``logTrace`` writes to the server log."""

IN_FUNCTIONS = frozenset({
    f"{g}{n}{ignore}"
    for g in ("", "global") for n in ("in", "notin", "nullin", "notnullin")
    for ignore in ("", "ignoreset")
})
"""``x IN f(...)``: ClickHouse evaluates a table function on the right of IN."""

_PLAIN_FORMS = re.compile(
    r"(DESCRIBE TABLE|EXISTS TABLE|SHOW CREATE TABLE|SHOW CREATE VIEW) "
    r"(?:[A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*"
)
"""Statements ``parseQueryToJSON`` cannot serialise, allowed only on a plain table name
(canonical text of ``formatQuerySingleLine``)."""


def check_statement(tree: Mapping[str, Any], *, table_functions: frozenset[str]) -> str:
    """Raise :class:`QueryError` unless ``tree`` (``parseQueryToJSON`` of one statement) only
    reads; return its node type. ``table_functions`` are the engine's table function names,
    lower case (``system.table_functions``)."""
    kind = str(tree.get("type", ""))
    if kind not in ALLOWED_STATEMENTS:
        raise QueryError(
            f"only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS are allowed (got {_name(kind)})"
        )
    if kind == "ExplainQuery":
        inner = tree.get("query")
        if not isinstance(inner, Mapping) or not str(inner.get("type", "")).startswith("Select"):
            raise QueryError("EXPLAIN is allowed for SELECT queries only")
    for node, parent_key, parent in _walk(tree, "", None):
        _check_node(node, parent_key, parent, table_functions)
    return kind


def check_plain_form(canonical: str) -> None:
    """For statements ``parseQueryToJSON`` cannot serialise: ``canonical`` (the text of
    ``formatQuerySingleLine``) must be one of the plain forms, else :class:`QueryError`."""
    if not _PLAIN_FORMS.fullmatch(canonical.strip()):
        raise QueryError(
            "only SELECT, WITH, SHOW, EXPLAIN, and DESCRIBE / EXISTS / SHOW CREATE of a plain "
            f"table name are allowed (got {canonical[:80]!r})"
        )


def _check_node(node: Mapping[str, Any], key: str, parent: Mapping[str, Any] | None,
                table_functions: frozenset[str]) -> None:
    if "out_file" in node or node.get("is_into_outfile_with_stdout"):
        raise QueryError("INTO OUTFILE is not allowed: the answer comes back to you")
    if "format_ast" in node:
        raise QueryError("FORMAT is not allowed: the caller chooses the output format "
                         "(grenswacht sql --format json|csv|table)")
    if "settings_ast" in node or node.get("type") == "SetQuery":
        raise QueryError("SETTINGS are not allowed in read-only queries (readonly=1)")
    if node.get("type") != "Function":
        return
    name = str(node.get("name", ""))
    lowered = name.lower()
    if lowered in DENIED_FUNCTIONS:
        raise QueryError(f"function {name}() is not allowed: it reads or writes the host")
    in_table_position = key == "table_function"
    if not in_table_position and parent is not None and key == "arguments[1]":
        in_table_position = str(parent.get("name", "")).lower() in IN_FUNCTIONS and (
            lowered in table_functions)
    if in_table_position and lowered not in ALLOWED_TABLE_FUNCTIONS:
        allowed = ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS))
        raise QueryError(f"table function {name}() is not allowed (allowed: {allowed})")


def _walk(node: Any, key: str, parent: Mapping[str, Any] | None
          ) -> Iterator[tuple[Mapping[str, Any], str, Mapping[str, Any] | None]]:
    """Every dict node with the key it hangs under; a function's positional arguments are
    ``arguments[i]`` so the right side of IN can be recognised."""
    if isinstance(node, Mapping):
        yield node, key, parent
        for child_key, child in node.items():
            if child_key == "arguments" and isinstance(child, Mapping):
                for index, argument in enumerate(child.get("children", [])):
                    yield from _walk(argument, f"arguments[{index}]", node)
            else:
                yield from _walk(child, str(child_key), node)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key, parent)


def _name(kind: str) -> str:
    return re.sub(r"Query$", "", kind.split("__")[0]) or "an empty statement"
