"""Cluster DDL generated from the real schema files, checked with ClickHouse's own parser
(chDB's ``formatQuery``) and against the tables the single-node migration created."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from consumers.storage import Storage
from schemas.clickhouse import migration_files, split_statements
from schemas.clickhouse.cluster import (
    LOCAL_SUFFIX,
    ClusterTarget,
    cluster_migration,
    cluster_statements,
)
from schemas.errors import ConfigError

TARGET = ClusterTarget("grenswacht", database="grenswacht")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "atlas"


def _parse(storage: Storage, statement: str) -> str:
    """ClickHouse's canonical form of ``statement``; a syntax error raises."""
    return str(storage.query("SELECT formatQuery({q:String})", {"q": statement}).rows[0][0])


def _single_node_tables(*, null: bool = False) -> dict[str, str]:
    """The MergeTree tables of the schema files (with ``null``: the Null input tables)."""
    tables = {}
    for _, sql in migration_files():
        for statement in split_statements(sql):
            found = re.match(r"\s*CREATE TABLE IF NOT EXISTS (\w+)", statement)
            if found and bool(re.search(r"ENGINE = Null\s*$", statement)) == null:
                tables[found[1]] = statement
    return tables


def test_every_schema_file_converts_and_parses(session_storage: Storage) -> None:
    tables = _single_node_tables()
    assert {"raw_results", "dead_letters", "traceroute_hops", "dns_answers"} <= set(tables)
    produced: list[str] = []
    expected = 0
    for _, sql in migration_files():
        produced += cluster_migration(sql, TARGET)
        for statement in split_statements(sql):  # local + distributed, except a view
            expected += 1 if re.match(r"\s*CREATE (MATERIALIZED )?VIEW", statement) else 2
    assert len(produced) == expected and expected >= 2 * len(tables)
    for statement in produced:
        canonical = _parse(session_storage, statement)
        assert "ON CLUSTER grenswacht" in canonical
    assert len({_parse(session_storage, s) for s in produced}) == len(produced)


@pytest.mark.parametrize("table", sorted(_single_node_tables()))
def test_local_table_is_the_replicated_twin_of_the_single_node_table(
    session_storage: Storage, table: str
) -> None:
    single = _single_node_tables()[table]
    local, distributed = cluster_statements([single], TARGET)
    canonical_local = _parse(session_storage, local)
    canonical_single = _parse(session_storage, single)
    # same columns (types, codecs, defaults) and same sorting key as the single-node table
    columns = canonical_single[canonical_single.index("(") : canonical_single.index("ENGINE")]
    assert columns in canonical_local
    order_by = re.search(r"ORDER BY .*", canonical_single)
    assert order_by is not None and order_by[0] in canonical_local
    engine = re.search(r"ENGINE = (\w+)(?:\((.*?)\))?\n", canonical_single + "\n")
    assert engine is not None
    replicated = re.search(r"ENGINE = (\w+)\('([^']*)', '([^']*)'(?:, )?(.*?)\)\n",
                           canonical_local)
    assert replicated is not None
    assert replicated[1] == "Replicated" + engine[1]
    assert replicated[2] == "/clickhouse/tables/{shard}/{database}/{table}"
    assert replicated[3] == "{replica}"
    assert replicated[4] == (engine[2] or "")  # the version column of ReplacingMergeTree stays
    window = re.search(r"non_replicated_deduplication_window = (\d+)", canonical_single)
    if window:  # the insert-deduplication window carries over to the replicated engine
        assert f"replicated_deduplication_window = {window[1]}" in canonical_local
    assert "non_replicated" not in canonical_local
    assert f"{table}{LOCAL_SUFFIX}" in canonical_local
    # Distributed keeps the original name, so queries and inserts need no change
    assert _parse(session_storage, distributed).startswith(
        f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER grenswacht AS {table}{LOCAL_SUFFIX}")


@pytest.mark.parametrize("table", sorted(_single_node_tables()))
def test_sharding_key_is_a_prefix_of_the_natural_key_and_runs_on_the_real_table(
    session_storage: Storage, table: str
) -> None:
    _, distributed = cluster_statements([_single_node_tables()[table]], TARGET)
    found = re.search(r"Distributed\('grenswacht', 'grenswacht', (\w+), cityHash64\((.*)\)\)$",
                      distributed)
    assert found is not None and found[1] == f"{table}{LOCAL_SUFFIX}"
    key_columns = [c.strip() for c in found[2].split(",")]
    sorting_key = session_storage.query(
        "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() "
        "AND name = {t:String}", {"t": table}).rows[0][0]
    sorting = [c.strip() for c in str(sorting_key).split(",")]
    assert sorting[: len(key_columns)] == key_columns  # equal natural keys -> same shard
    # the expression is valid on the real table and yields one UInt64 per row
    described = session_storage.query(
        f"DESCRIBE (SELECT cityHash64({found[2]}) AS shard FROM {table})").rows  # noqa: S608
    assert [(row[0], row[1]) for row in described] == [("shard", "UInt64")]


def test_results_of_one_measurement_result_share_a_shard() -> None:
    """hops, DNS answers and ping rows of one result hash on (source, msm, probe, time)."""
    keys = set()
    for table in ("traceroute_hops", "dns_answers", "ping_results"):
        _, distributed = cluster_statements([_single_node_tables()[table]], TARGET)
        keys.add(distributed.rsplit("cityHash64", 1)[1])
    assert keys == {"(source, measurement_id, probe_id, timestamp))"}


@pytest.mark.parametrize("table", sorted(_single_node_tables(null=True)))
def test_an_input_table_and_its_view_stay_on_the_shard_of_the_rows(
    session_storage: Storage, table: str
) -> None:
    """A Null input table is Null on every node, Distributed with the sharding key of its
    view's target expressed in the input's columns, and the view writes the target's local
    table from the local input: a line's rows are written on the shard where a direct insert
    of those rows would land. The keys are compared on real rows: lines ClickHouse parses
    (format()) hash exactly as the rows their view makes."""
    statements = [s for _, sql in migration_files() for s in cluster_migration(sql, TARGET)]
    local = next(s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS {table}"
                                                       f"{LOCAL_SUFFIX} "))
    distributed = next(s for s in statements
                       if s.startswith(f"CREATE TABLE IF NOT EXISTS {table} "))
    view = next(s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")
                and f"FROM {table}{LOCAL_SUFFIX}" in s)
    assert local.rstrip().endswith("ENGINE = Null")
    target = re.search(r" TO (\w+) AS ", view)
    assert target is not None and target[1].endswith(LOCAL_SUFFIX)
    _, target_distributed = cluster_statements(
        [_single_node_tables()[target[1][: -len(LOCAL_SUFFIX)]]], TARGET)
    for statement in (local, distributed, view):
        assert "ON CLUSTER grenswacht" in _parse(session_storage, statement)
    input_key = re.search(r", (cityHash64\(.*\))\)$", distributed)
    rows_key = re.search(r", (cityHash64\(.*\))\)$", target_distributed)
    assert input_key is not None and rows_key is not None
    # real lines: the regular traceroutes of a fixture, as the sink sends them
    from schemas.explode import explode_into
    from schemas.normalize import RowBatch

    batch = RowBatch()
    for line in (FIXTURES / "traceroute" / "sagan_tests.jsonl").read_bytes().splitlines():
        explode_into(orjson.loads(line), batch, source="file", payload=line)
    lines = b"\n".join(row[0] for row in batch.tables[table]).decode()
    assert lines
    structure = session_storage.query(
        "SELECT arrayStringConcat(groupArray(concat('`', name, '` ', type)), ', ') "
        "FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
        {"t": table}).rows[0][0]
    parsed = f"format(JSONEachRow, {_quote(structure)}, {_quote(lines)})"
    by_line = session_storage.query(
        f"SELECT groupArray({input_key[1]}) FROM {parsed}").rows[0][0]  # noqa: S608
    select = re.split(r"\sAS\s+SELECT\s", view, maxsplit=1)[1]
    columns, joins = re.split(rf"\sFROM\s+{table}{LOCAL_SUFFIX}\b", select, maxsplit=1)
    exploded = session_storage.query(
        f"SELECT groupArray(DISTINCT {rows_key[1]}) FROM (SELECT {columns} "  # noqa: S608
        f"FROM {parsed} {joins})").rows[0][0]
    assert sorted(set(by_line)) == sorted(exploded) and len(by_line) == len(batch.spans)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_default_database_is_the_current_one() -> None:
    _, distributed = cluster_statements([_single_node_tables()["raw_results"]],
                                        ClusterTarget("c1"))
    assert "Distributed('c1', currentDatabase(), raw_results_local," in distributed


def test_alter_drop_and_view_statements(session_storage: Storage) -> None:
    produced = cluster_statements(
        [
            "ALTER TABLE raw_results ADD COLUMN IF NOT EXISTS note String",
            "ALTER TABLE raw_results DELETE WHERE probe_id = 0",
            "DROP TABLE IF EXISTS old_table",
            "CREATE VIEW IF NOT EXISTS hop_counts AS SELECT count() FROM traceroute_hops",
        ],
        TARGET,
    )
    assert produced == [
        "ALTER TABLE raw_results_local ON CLUSTER 'grenswacht' "
        "ADD COLUMN IF NOT EXISTS note String",
        "ALTER TABLE raw_results ON CLUSTER 'grenswacht' ADD COLUMN IF NOT EXISTS note String",
        "ALTER TABLE raw_results_local ON CLUSTER 'grenswacht' DELETE WHERE probe_id = 0",
        "DROP TABLE IF EXISTS old_table ON CLUSTER 'grenswacht' SYNC",
        "DROP TABLE IF EXISTS old_table_local ON CLUSTER 'grenswacht' SYNC",
        "CREATE VIEW IF NOT EXISTS hop_counts ON CLUSTER 'grenswacht' AS SELECT count() "
        "FROM traceroute_hops",
    ]
    for statement in produced:
        _parse(session_storage, statement)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE MATERIALIZED VIEW mv TO t AS SELECT 1",
        "CREATE MATERIALIZED VIEW mv TO traceroute_hops AS SELECT * FROM raw_results",
        "CREATE MATERIALIZED VIEW mv ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x FROM t",
        "CREATE TABLE scratch (x UInt8) ENGINE = Memory",
        "INSERT INTO raw_results VALUES (1)",
        "CREATE TABLE broken (x UInt8 ENGINE = MergeTree ORDER BY x",
    ],
)
def test_unsupported_statements_are_refused_not_mangled(statement: str) -> None:
    with pytest.raises(ConfigError, match="cluster DDL"):
        cluster_statements([statement], TARGET)


@pytest.mark.parametrize("cluster", ["", "bad name", "x';DROP TABLE t;--"])
def test_cluster_names_are_checked(cluster: str) -> None:
    with pytest.raises(ConfigError, match="cluster name"):
        ClusterTarget(cluster)
