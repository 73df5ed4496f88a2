"""ClickHouse cluster DDL generated from the single-node schema files.

``schemas/clickhouse/*.sql`` is written for one ClickHouse node (and chDB). On a cluster
the same tables become two per name, generated here so there is no hand-kept copy:

* ``<name>_local`` — the data, ``ON CLUSTER``, with the ``MergeTree`` engine swapped for its
  ``Replicated*`` twin (ZooKeeper/Keeper path ``/clickhouse/tables/{shard}/{database}/{table}``
  and replica ``{replica}``, the server's macros), ``non_replicated_deduplication_window``
  swapped for ``replicated_deduplication_window`` (same window);
* ``<name>`` — a ``Distributed`` table over ``<name>_local`` on every shard, sharded by a hash
  of the table's ``ORDER BY`` key (up to ``timestamp``, see :func:`sharding_key`). Rows with
  the same natural key therefore always land on the same shard, so ``ReplacingMergeTree``
  deduplication (and ``FINAL``) stay correct, and every query and insert in
  grenswacht keeps using the unchanged table names.

``ALTER TABLE`` column changes are applied to both tables, ``DROP TABLE`` drops both, and a
plain ``CREATE VIEW`` gets ``ON CLUSTER`` (it reads the Distributed names).

Input tables that ClickHouse explodes (``ENGINE = Null`` with a materialized view ``TO`` a
MergeTree table, ``050_traceroute_explode.sql``) become ``<name>_local`` (Null) on every node,
``<name>`` Distributed over them, **sharded like the view's target table**, and the view
``ON CLUSTER`` reading ``<name>_local`` and writing ``<target>_local``: a line lands on the
shard its result's rows belong to, and its view writes them there, into the replicated
table (so insert deduplication and ``FINAL`` stay per shard, as for a direct insert). The
target's sharding key is read from the schema files (:func:`schema_tables`); views of one
input table must agree on it. Anything else (other materialized views, other engines,
inserts) raises :class:`ConfigError` naming the statement: silently producing wrong cluster
DDL would be worse than refusing.

Everything here is pure (strings in, strings out); ``grenswacht migrate --cluster NAME``
applies the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from schemas.clickhouse import migration_files, split_statements
from schemas.errors import ConfigError

LOCAL_SUFFIX = "_local"
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"
RESULT_KEY_END = "timestamp"

_IDENT = r"(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)"
_CREATE_TABLE = re.compile(
    rf"^\s*CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>(?:{_IDENT}\.)?{_IDENT})\s*",
    re.I,
)
_CREATE_VIEW = re.compile(
    rf"^\s*CREATE\s+(?P<orr>OR\s+REPLACE\s+)?VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>(?:{_IDENT}\.)?{_IDENT})\s+(?P<rest>.*)$",
    re.I | re.S,
)
_ALTER_TABLE = re.compile(rf"^\s*ALTER\s+TABLE\s+(?P<name>(?:{_IDENT}\.)?{_IDENT})\s+(?P<rest>.*)$",
                          re.I | re.S)
_DROP_TABLE = re.compile(
    rf"^\s*DROP\s+TABLE\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>(?:{_IDENT}\.)?{_IDENT})\s*$", re.I
)
_COLUMN_ALTER = re.compile(r"^\s*(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?P<engine>[A-Za-z]*MergeTree)\b\s*", re.I)
_ORDER_BY = re.compile(r"\bORDER\s+BY\b", re.I)
_NEXT_CLAUSE = re.compile(
    r"\b(PARTITION\s+BY|PRIMARY\s+KEY|SAMPLE\s+BY|TTL|SETTINGS|COMMENT)\b", re.I
)
_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b", re.I)
_NULL_ENGINE = re.compile(r"\bENGINE\s*=\s*Null\s*$", re.I)
_CREATE_MV = re.compile(
    rf"^\s*CREATE\s+MATERIALIZED\s+VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>(?:{_IDENT}\.)?{_IDENT})\s+TO\s+(?P<to>(?:{_IDENT}\.)?{_IDENT})\s+AS\s+"
    rf"(?P<select>SELECT\b.*)$",
    re.I | re.S,
)
_FROM = re.compile(rf"\bFROM\s+(?P<name>(?:{_IDENT}\.)?{_IDENT})", re.I)


@dataclass(frozen=True, slots=True)
class ClusterTarget:
    """Where the generated DDL goes: the cluster name (``remote_servers``) and, optionally,
    the database the Distributed tables point at (default ``currentDatabase()``)."""

    cluster: str
    database: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.{}-]+", self.cluster):
            raise ConfigError(f"invalid ClickHouse cluster name {self.cluster!r}")
        if self.database is not None and not re.fullmatch(r"[A-Za-z0-9_]+", self.database):
            raise ConfigError(f"invalid ClickHouse database name {self.database!r}")

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER '{self.cluster}'"

    @property
    def database_expression(self) -> str:
        return f"'{self.database}'" if self.database else "currentDatabase()"


def cluster_statements(statements: Iterable[str], target: ClusterTarget) -> list[str]:
    """Cluster DDL for single-node DDL statements (each without its trailing ``;``)."""
    out: list[str] = []
    for statement in statements:
        out.extend(_convert(statement.strip().rstrip(";").strip(), target))
    return out


def cluster_migration(sql: str, target: ClusterTarget) -> list[str]:
    """Cluster DDL for one schema file's text (split like ``Storage.migrate`` splits it)."""
    return cluster_statements(split_statements(sql), target)


def local_name(name: str) -> str:
    """``db.table`` -> ``db.table_local``; backquoted names keep their quotes."""
    if name.endswith("`"):
        return name[:-1] + LOCAL_SUFFIX + "`"
    return name + LOCAL_SUFFIX


def _convert(statement: str, target: ClusterTarget) -> list[str]:
    if match := _CREATE_TABLE.match(statement):
        return _create_table(statement, match, target)
    if match := _CREATE_VIEW.match(statement):
        head = "CREATE " + ("OR REPLACE " if match["orr"] else "") + "VIEW "
        head += "IF NOT EXISTS " if match["ine"] else ""
        return [f"{head}{match['name']} {target.on_cluster} {match['rest']}"]
    if re.match(r"^\s*CREATE\s+MATERIALIZED\s+VIEW\b", statement, re.I):
        return [_materialized_view(statement, target)]
    if match := _ALTER_TABLE.match(statement):
        name, rest = match["name"], match["rest"]
        local = f"ALTER TABLE {local_name(name)} {target.on_cluster} {rest}"
        if _COLUMN_ALTER.match(rest):
            return [local, f"ALTER TABLE {name} {target.on_cluster} {rest}"]
        return [local]
    if match := _DROP_TABLE.match(statement):
        exists = "IF EXISTS " if match["ie"] else ""
        name = match["name"]
        return [
            f"DROP TABLE {exists}{name} {target.on_cluster} SYNC",
            f"DROP TABLE {exists}{local_name(name)} {target.on_cluster} SYNC",
        ]
    raise ConfigError(f"cluster DDL: unsupported statement: {_head(statement)}")


@cache
def schema_tables() -> dict[str, str]:
    """``name -> CREATE statement`` of every table and materialized view the schema files
    create (single-node form), for the look-ups across files."""
    found: dict[str, str] = {}
    for _, sql in migration_files():
        for statement in split_statements(sql):
            if match := _CREATE_TABLE.match(statement):
                found[match["name"]] = statement
            elif match := _CREATE_MV.match(statement):
                found[match["name"]] = statement
    return found


def _target_sharding_key(table: str) -> str:
    statement = schema_tables().get(table)
    match = _CREATE_TABLE.match(statement or "")
    if statement is None or match is None:
        raise ConfigError(f"cluster DDL: the view target {table} is not a schema table")
    rest = statement[match.end():]
    tail = rest[_matching_paren(rest, 0) + 1:]
    engine = _ENGINE.search(tail)
    if engine is None:
        raise ConfigError(f"cluster DDL: the view target {table} is not a MergeTree table")
    return sharding_key(tail[engine.end():])


def _view_expressions(select: str) -> dict[str, str]:
    """``alias -> expression`` of a view's ``SELECT expr AS alias, …`` list."""
    body = select[len("SELECT"):]
    end = _top_level_search(_FROM, body)
    expressions: dict[str, str] = {}
    for item in _split_top_level(body[:end] if end is not None else body):
        found = re.fullmatch(rf"(?P<expr>.*\S)\s+AS\s+(?P<alias>{_IDENT})", item, re.I | re.S)
        if found:
            expressions[found["alias"].strip("`")] = " ".join(found["expr"].split())
    return expressions


def _input_sharding_key(name: str) -> str:
    """The sharding key of a Null input table: the key of its views' targets, with each
    key column replaced by the view's expression for it, so a line hashes exactly as its
    rows would (same values, same types) and lands on their shard."""
    keys = set()
    for statement in schema_tables().values():
        view = _CREATE_MV.match(statement)
        source = _FROM.search(view["select"]) if view else None
        if view and source and source["name"] == name:
            key = _target_sharding_key(view["to"])
            expressions = _view_expressions(view["select"])
            columns = _split_top_level(key[len("cityHash64("):-1])
            missing = [column for column in columns if column not in expressions]
            if key == "rand()" or missing:
                raise ConfigError(f"cluster DDL: the view {view['name']} does not select the "
                                  f"sharding key columns {missing} of {view['to']}")
            keys.add(f"cityHash64({', '.join(expressions[c] for c in columns)})")
    if len(keys) != 1:
        raise ConfigError(f"cluster DDL: the Null table {name} needs materialized views whose "
                          f"targets share one sharding key (found {sorted(keys)})")
    return keys.pop()


def _materialized_view(statement: str, target: ClusterTarget) -> str:
    match = _CREATE_MV.match(statement)
    source = _FROM.search(match["select"]) if match else None
    if match is None or source is None:
        raise ConfigError("cluster DDL: only a materialized view TO a table, reading one "
                          f"table, is supported: {_head(statement)}")
    origin = schema_tables().get(source["name"], "")
    if not _NULL_ENGINE.search(origin):
        raise ConfigError(f"cluster DDL: a materialized view must read a Null input table, "
                          f"not {source['name']}: {_head(statement)}")
    _target_sharding_key(match["to"])  # a MergeTree schema table
    select = match["select"]
    select = (select[: source.start("name")] + local_name(source["name"])
              + select[source.end("name"):])
    exists = "IF NOT EXISTS " if match["ine"] else ""
    return (f"CREATE MATERIALIZED VIEW {exists}{match['name']} {target.on_cluster} "
            f"TO {local_name(match['to'])} AS {select}")


def _create_table(statement: str, match: re.Match[str], target: ClusterTarget) -> list[str]:
    name = match["name"]
    rest = statement[match.end():]
    if not rest.startswith("("):
        raise ConfigError(f"cluster DDL: expected a column list after {name}: {_head(statement)}")
    columns_end = _matching_paren(rest, 0)
    columns, tail = rest[: columns_end + 1], rest[columns_end + 1:]
    exists = "IF NOT EXISTS " if match["ine"] else ""
    qualifier, _, table = local_name(name).rpartition(".")
    database = qualifier or target.database_expression
    if _NULL_ENGINE.search(tail):
        return [
            f"CREATE TABLE {exists}{local_name(name)} {target.on_cluster}\n{columns}\n"
            "ENGINE = Null",
            f"CREATE TABLE {exists}{name} {target.on_cluster} AS {local_name(name)}\n"
            f"ENGINE = Distributed('{target.cluster}', {database}, {table}, "
            f"{_input_sharding_key(name)})",
        ]
    engine = _ENGINE.search(tail)
    if engine is None:
        raise ConfigError(
            f"cluster DDL: only MergeTree-family tables can be replicated: {_head(statement)}"
        )
    after_engine = tail[engine.end():]
    arguments = ""
    if after_engine.startswith("("):
        close = _matching_paren(after_engine, 0)
        arguments = after_engine[1:close].strip()
        after_engine = after_engine[close + 1:]
    replicated_args = f"'{REPLICA_PATH}', '{REPLICA_NAME}'"
    if arguments:
        replicated_args += f", {arguments}"
    engine_clause = f"ENGINE = Replicated{engine['engine']}({replicated_args})"
    clauses = _DEDUP_WINDOW.sub("replicated_deduplication_window", after_engine.strip())
    local = (
        f"CREATE TABLE {exists}{local_name(name)} {target.on_cluster}\n{columns}\n"
        f"{tail[: engine.start()].strip()}{' ' if tail[: engine.start()].strip() else ''}"
        f"{engine_clause}\n{clauses}"
    ).rstrip()
    distributed = (
        f"CREATE TABLE {exists}{name} {target.on_cluster} AS {local_name(name)}\n"
        f"ENGINE = Distributed('{target.cluster}', {database}, {table}, {sharding_key(clauses)})"
    )
    return [local, distributed]


def sharding_key(clauses: str) -> str:
    """``cityHash64(<ORDER BY columns>)`` from the clauses after ``ENGINE``, cut after
    ``timestamp`` when the key has it (the key of one result: all hops, answers and rows of
    one measurement result stay on one shard); ``rand()`` for a table without a sorting key.
    A prefix of the sorting key is enough: equal keys always hash alike."""
    order = _ORDER_BY.search(clauses)
    if order is None:
        return "rand()"
    expression = clauses[order.end():]
    stop = _top_level_search(_NEXT_CLAUSE, expression)
    expression = expression[:stop].strip() if stop is not None else expression.strip()
    if expression.startswith("(") and _matching_paren(expression, 0) == len(expression) - 1:
        expression = expression[1:-1].strip()
    if expression in ("", "tuple()"):
        return "rand()"
    columns = _split_top_level(expression)
    if RESULT_KEY_END in columns:
        columns = columns[: columns.index(RESULT_KEY_END) + 1]
    return f"cityHash64({', '.join(columns)})"


def _split_top_level(expression: str) -> list[str]:
    """``a, f(b, c), d`` -> ``["a", "f(b, c)", "d"]``."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in expression:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [part for part in parts if part]


def _matching_paren(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at ``text[start]`` (quotes respected)."""
    depth = 0
    quote: str | None = None
    index = start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in ("'", '"', "`"):
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ConfigError(f"cluster DDL: unbalanced parentheses in {_head(text)}")


def _top_level_search(pattern: re.Pattern[str], text: str) -> int | None:
    """Start of the first match of ``pattern`` outside parentheses and quotes."""
    for found in pattern.finditer(text):
        prefix = text[: found.start()]
        if prefix.count("(") == prefix.count(")") and prefix.count("'") % 2 == 0:
            return found.start()
    return None


def _head(statement: str) -> str:
    return " ".join(statement.split())[:80]
