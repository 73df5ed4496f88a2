"""The ClickHouse DDL of the contract: the ``NNN_*.sql`` files beside this module, applied in
name order, and the helpers that read them. The single-node files are the only hand-written
DDL; :mod:`schemas.clickhouse.cluster` derives the cluster variant from them.

Pure: reading packaged files and splitting text, no database access (``consumers/storage.py``
applies the statements).
"""

from __future__ import annotations

from importlib import resources

MIGRATIONS_TABLE = "schema_migrations"


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every DDL file in ``schemas/clickhouse``, in name order."""
    folder = resources.files(__name__)
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, (folder / name).read_text(encoding="utf-8")) for name in names]


def split_statements(sql: str) -> list[str]:
    """Split a DDL file on ``;`` at line ends, dropping ``--`` comment lines."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]
