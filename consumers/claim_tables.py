"""The geo / ASN / operator claims as ClickHouse dictionaries (``LAYOUT(IP_TRIE)``).

Each geo source (``consumers.enrich.geo``, ``consumers.enrich.cloud``) is exported into a
table of CIDR prefixes with the claim's fields, and a dictionary over it; ClickHouse then
answers the claims of a window's reply addresses in one query per ~13,000 addresses (the
engine's query size; :func:`claims_from_clickhouse`), equal (``==``) to what the Python
sources return, in the same order of sources. The Python lookups stay the fallback for
what the query does not cover: sources of another kind, and the few IPv6 spans an ip_trie
cannot tell apart from IPv4 (``::/80``: ``::/96``, ``::ffff:0:0/96``) or that mmdb files
alias to IPv4 (``2002::/16``).

* geoip2fast is range based: its country ranges and AS blocks become two tables
  (``claims_geoip2fast_country``, ``claims_geoip2fast_asn``) of CIDRs that give every
  address exactly what ``Geoip2FastSource.lookup`` gives (see ``country_networks``);
* mmdb files and cloud range files become one table each, one row per network with every
  field of its claim (a longest-prefix match, as ``CloudRangesSource.match``).

``claim_datasets`` (source, version, networks, loaded_at) records what is loaded: a store
loads each source once per dataset version (:data:`EXPORT_VERSION` is part of the
version, so a change of the export reloads). The tables and dictionaries are created here,
not in ``schemas/clickhouse/`` (their names come from the configured sources); they are
single-node DDL (a cluster would need them ``ON CLUSTER`` on every node, not done yet).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from consumers.enrich.cloud import CloudRangesSource
from consumers.enrich.geo import GeoClaim, Geoip2FastSource, GeoSource, MaxMindSource, is_public
from consumers.enrich.hops import Enricher
from schemas.errors import StorageError

log = logging.getLogger(__name__)

EXPORT_VERSION = 1
LEDGER = "claim_datasets"
_BATCH = 200_000  # rows per insert of a claim table
_QUERY_ADDRESSES = 100_000  # addresses per claims call
_LITERAL_BYTES = 200_000  # of addresses per query (the engine's max_query_size: 256 KiB)
_CLAIM_COLUMNS = (
    ("source", "String"), ("dataset_version", "String"), ("country", "String"),
    ("registered_country", "String"), ("latitude", "Float64"), ("longitude", "Float64"),
    ("accuracy_km", "Float64"), ("asn", "Int64"), ("as_name", "String"),
    ("cloud_provider", "String"), ("region", "String"), ("anycast", "UInt8"),
    ("extra", "String"),
)
"""Every GeoClaim field (ip_trie dictionaries take no Nullable: None is NaN / -1; extra is
JSON)."""
_LEDGER_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LEDGER} (source String, version String, networks UInt64, "
    "seconds Float64, loaded_at DateTime64(3, 'UTC')) "
    "ENGINE = ReplacingMergeTree(loaded_at) ORDER BY source"
)
_NOT_COVERED = ("::/80", "2002::/16")
"""IPv6 spans left to the Python lookups (an ip_trie keeps IPv4 in ::ffff:0:0/96; mmdb files
alias ::/96, ::ffff:0:0/96 and 2002::/16 to their IPv4 tree, which maxminddb does not
iterate). Checked on the packed address in :func:`_covered`."""
_PLAIN = re.compile(r"[0-9A-Fa-f.:]+")
_PATH = re.compile(r"[A-Za-z0-9_./@+=-]+")  # a cache path put into SQL as a literal


@dataclass(frozen=True, slots=True)
class Load:
    source: str
    version: str
    networks: int  # rows written now; 0 when the stored version was current
    seconds: float
    loaded: bool


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _tables(source: GeoSource) -> tuple[str, ...]:
    """The tables (= dictionaries, with a ``_dict`` suffix) of ``source``; () if it cannot
    be exported."""
    if isinstance(source, Geoip2FastSource):
        return ("claims_geoip2fast_country", "claims_geoip2fast_asn")
    if isinstance(source, (MaxMindSource, CloudRangesSource)):
        return (f"claims_{_slug(source.name)}",)
    return ()


def _version(source: GeoSource) -> str:
    """The source's dataset version, with the export's and (for files the user configures,
    whose version fields need not change with their content) the files' own digest."""
    files: list[Path] = []
    if isinstance(source, MaxMindSource):
        files = [source.path]
    elif isinstance(source, CloudRangesSource):
        files = [Path(f) for _, f in sorted(source.files.items())]
    marks = [_digest(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    mark = f" sha256 {' '.join(marks)}" if marks else ""
    return f"{source.version} [claim tables v{EXPORT_VERSION}{mark}]"


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """A file's digest, per size and modification time (asked for every window)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()[:16]


def _create(storage: Any, table: str, columns: Sequence[tuple[str, str]]) -> None:
    spec = ", ".join(f"{name} {kind}" for name, kind in (("prefix", "String"), *columns))
    storage.command(f"CREATE TABLE IF NOT EXISTS {table} ({spec}) "
                    "ENGINE = MergeTree ORDER BY prefix")
    storage.command(f"CREATE DICTIONARY IF NOT EXISTS {table}_dict ({spec}) PRIMARY KEY prefix "
                    f"SOURCE(CLICKHOUSE(TABLE '{table}')) LAYOUT(IP_TRIE) LIFETIME(0)")


def _insert(storage: Any, table: str, rows: Iterable[tuple[Any, ...]],
            names: Sequence[str]) -> int:
    count = 0
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        if batch:
            columns = list(zip(*batch, strict=True))
            storage.insert(table, {name: list(col) for name, col in zip(names, columns,
                                                                         strict=True)})
            batch.clear()

    for row in rows:
        batch.append(row)
        count += 1
        if len(batch) >= _BATCH:
            flush()
    flush()
    return count


def _claim_row(prefix: str, claim: GeoClaim) -> tuple[Any, ...]:
    def number(value: float | None) -> float:
        return math.nan if value is None else float(value)

    return (prefix, claim.source, claim.dataset_version, claim.country,
            claim.registered_country, number(claim.latitude), number(claim.longitude),
            number(claim.accuracy_km), -1 if claim.asn is None else claim.asn, claim.as_name,
            claim.cloud_provider, claim.region, int(claim.anycast),
            orjson.dumps(claim.extra).decode() if claim.extra else "")


def _export(storage: Any, source: GeoSource) -> int:
    tables = _tables(source)
    for table in tables:
        storage.command(f"TRUNCATE TABLE IF EXISTS {table}")
    if isinstance(source, Geoip2FastSource):
        country, asn = tables
        _create(storage, country, (("country", "String"),))
        _create(storage, asn, (("as_name", "String"),))
    else:
        (table,) = tables
        _create(storage, table, _CLAIM_COLUMNS)
    files = _cache_files(storage, source, tables)
    count = _from_cache(storage, tables, files)
    if count is None:
        count = _from_source(storage, source, tables)
        _to_cache(storage, tables, files)
    for table in tables:
        storage.command(f"SYSTEM RELOAD DICTIONARY {table}_dict")
    return count


def _from_source(storage: Any, source: GeoSource, tables: Sequence[str]) -> int:
    if isinstance(source, Geoip2FastSource):
        country, asn = tables
        count = _insert(storage, country, source.country_networks(), ("prefix", "country"))
        return count + _insert(storage, asn, source.as_networks(), ("prefix", "as_name"))
    assert isinstance(source, (MaxMindSource, CloudRangesSource))  # noqa: S101 - _tables
    names = ("prefix", *(name for name, _ in _CLAIM_COLUMNS))
    return _insert(storage, tables[0], (_claim_row(p, c) for p, c in source.networks()), names)


def cache_dir() -> Path:
    """Where the exported claim tables are kept between stores of this machine."""
    root = os.environ.get("GRENSWACHT_CACHE") or Path.home() / ".cache" / "grenswacht"
    return Path(root) / "claims"


def _cache_files(storage: Any, source: GeoSource, tables: Sequence[str]) -> list[Path]:
    """One ClickHouse ``Native`` file per table of this source's dataset version, for an
    embedded store only (a server's ``file()`` is on the server); [] when not cached."""
    if not getattr(storage, "is_embedded", False) or not isinstance(source, Geoip2FastSource):
        return []  # the other sources are small, and their files are the user's to change
    tag = hashlib.sha256(_version(source).encode()).hexdigest()[:16]
    files = [cache_dir() / f"{table}-{tag}.native" for table in tables]
    return files if all(_PATH.fullmatch(str(f)) for f in files) else []


def _from_cache(storage: Any, tables: Sequence[str], files: Sequence[Path]) -> int | None:
    """Fill ``tables`` from their cache files (the rows ClickHouse wrote, read back as they
    were); None when there is none or it cannot be read (the tables are emptied again)."""
    if not files or not all(f.is_file() for f in files):
        return None
    try:
        for table, path in zip(tables, files, strict=True):
            storage.command(f"INSERT INTO {table} SELECT * FROM file('{path}', 'Native')")  # noqa: S608 - names from _tables, path checked by _PATH
    except StorageError as exc:
        log.warning("the cached claim tables cannot be read (%s); exported again", exc)
        for table in tables:
            storage.command(f"TRUNCATE TABLE IF EXISTS {table}")
        return None
    return sum(int(storage.query(f"SELECT count() FROM {t}").rows[0][0])  # noqa: S608
               for t in tables)


def _to_cache(storage: Any, tables: Sequence[str], files: Sequence[Path]) -> None:
    """Write ``tables`` to their cache files (a temporary name first: a file is whole)."""
    if not files:
        return
    for table, path in zip(tables, files, strict=True):
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            storage.command(f"INSERT INTO FUNCTION file('{temporary}', 'Native') "  # noqa: S608
                            f"SELECT * FROM {table}")
            os.replace(temporary, path)
        except (OSError, StorageError) as exc:
            log.info("claim table %s not cached (%s)", table, exc)
            temporary.unlink(missing_ok=True)


_LOADED: dict[tuple[str, str, str], bool] = {}
_LOCK = threading.Lock()


def stored_versions(storage: Any) -> dict[str, str]:
    storage.command(_LEDGER_DDL)
    rows = storage.query(f"SELECT source, version FROM {LEDGER} FINAL").rows  # noqa: S608
    return {str(source): str(version) for source, version in rows}


def load_claim_tables(storage: Any, sources: Iterable[GeoSource]) -> list[Load]:
    """Export every source whose stored version differs from its own (once per store and
    dataset version); the others are left as they are."""
    with _LOCK:
        stored = stored_versions(storage)
        out = []
        for source in sources:
            if not _tables(source):
                continue
            version = _version(source)
            if stored.get(source.name) == version:
                out.append(Load(source.name, version, 0, 0.0, False))
            else:
                log.info("loading the geo claims of %s into ClickHouse (once per store and "
                         "dataset version)", source.name)
                started = time.perf_counter()
                count = _export(storage, source)
                seconds = time.perf_counter() - started
                log.info("loaded %d networks of %s in %.1f s", count, source.name, seconds)
                storage.insert(LEDGER, {"source": [source.name], "version": [version],
                                        "networks": [count], "seconds": [seconds],
                                        "loaded_at": [dt.datetime.now(dt.UTC)]})
                out.append(Load(source.name, version, count, seconds, True))
            _LOADED[(storage.dsn, source.name, version)] = True
        return out


def ensure_loaded(storage: Any, sources: Sequence[GeoSource]) -> None:
    """:func:`load_claim_tables` unless this process already saw them loaded."""
    if any(_tables(s) and (storage.dsn, s.name, _version(s)) not in _LOADED for s in sources):
        load_claim_tables(storage, sources)


def forget_loaded() -> None:
    """Drop the process's memory of loaded stores (a test that drops the tables)."""
    _LOADED.clear()


def _covered(address: str) -> bool:
    """Whether the query answers ``address`` (a public address, see :data:`_NOT_COVERED`);
    only plain address text (digits, dots, colons) goes into the query's literal."""
    if not _PLAIN.fullmatch(address):
        return False
    if ":" not in address:
        return True
    try:
        packed = socket.inet_pton(socket.AF_INET6, address)
    except OSError:
        return False
    return packed[:2] != b"\x20\x02" and packed[:10] != bytes(10)


def _columns(source: GeoSource) -> list[str]:
    key = "tuple(toIPv6(a))"
    if isinstance(source, Geoip2FastSource):
        country, asn = (f"{t}_dict" for t in _tables(source))
        return [f"dictHas('{country}', {key})",
                f"dictGetOrDefault('{country}', 'country', {key}, '--')",
                f"if(dictHas('{country}', {key}), dictGetOrDefault('{asn}', 'as_name', {key}, ''),"
                " '')"]
    (table,) = _tables(source)
    names = ", ".join(f"'{name}'" for name, _ in _CLAIM_COLUMNS)
    return [f"dictHas('{table}_dict', {key})", f"dictGet('{table}_dict', ({names}), {key})"]


def _claim(values: Sequence[Any]) -> GeoClaim:
    fields = dict(zip((name for name, _ in _CLAIM_COLUMNS), values, strict=True))

    def number(value: float) -> float | None:
        return None if math.isnan(value) else value

    return GeoClaim(
        fields["source"], fields["dataset_version"], country=fields["country"],
        registered_country=fields["registered_country"],
        latitude=number(fields["latitude"]), longitude=number(fields["longitude"]),
        accuracy_km=number(fields["accuracy_km"]),
        asn=None if fields["asn"] == -1 else int(fields["asn"]), as_name=fields["as_name"],
        cloud_provider=fields["cloud_provider"], region=fields["region"],
        anycast=bool(fields["anycast"]),
        extra=orjson.loads(fields["extra"]) if fields["extra"] else {},
    )


def _literals(addresses: list[str]) -> Iterator[str]:
    """The addresses as comma-separated literals, each within the engine's query size (a
    literal, not a bound Array(String) or String: the client escapes a bound value character
    by character in Python, 0.7 s for 100,000 addresses; :func:`_covered` let only digits,
    dots and colons through)."""
    chunk: list[str] = []
    size = 0
    for address in addresses:
        if size + len(address) + 1 > _LITERAL_BYTES and chunk:
            yield ",".join(chunk)
            chunk, size = [], 0
        chunk.append(address)
        size += len(address) + 1
    if chunk:
        yield ",".join(chunk)


def claims_from_clickhouse(storage: Any, addresses: Iterable[str],
                           sources: Sequence[GeoSource]) -> dict[str, tuple[GeoClaim, ...]]:
    """The claims of ``addresses`` by ``sources`` (in their order), answered by ClickHouse
    in one query per :data:`_LITERAL_BYTES` of addresses: equal to
    ``Enricher(sources, ...).claims(address)``. Addresses the query cannot answer are left
    out (a source that is not exported, an IPv6 span of :data:`_NOT_COVERED`): the caller
    looks them up in Python."""
    if not sources or not all(_tables(s) for s in sources):
        return {}
    ensure_loaded(storage, sources)
    out: dict[str, tuple[GeoClaim, ...]] = {}
    asked: list[str] = []
    for address in dict.fromkeys(addresses):
        if not is_public(address):
            out[address] = ()
        elif _covered(address):
            asked.append(address)
    if not asked:
        return out
    columns = ", ".join(column for s in sources for column in _columns(s))
    same: dict[tuple[int, str, str], GeoClaim | None] = {}  # geoip2fast: few distinct claims
    for row in (row for chunk in _literals(asked) for row in storage.query(
            f"SELECT a, {columns} "  # noqa: S608 - names from _tables, addresses: _covered
            f"FROM (SELECT arrayJoin(splitByChar(',', '{chunk}')) AS a)").rows):
        found: list[GeoClaim] = []
        at = 1
        for source in sources:
            if isinstance(source, Geoip2FastSource):
                country, as_name = row[at + 1], row[at + 2]
                pair = (id(source), str(country), str(as_name))
                if pair not in same:
                    same[pair] = source.claim(pair[1], pair[2])
                claim = same[pair]
                at += 3
            else:
                value = row[at + 1]
                values = list(value.values()) if isinstance(value, Mapping) else list(value)
                claim = _claim(values) if row[at] else None
                at += 2
            if claim is not None:
                found.append(claim)
        out[str(row[0])] = tuple(found)
    return out


WINDOW_ADDRESS_FIELDS = ("reply_address", "destination_address", "near_address", "far_address")
"""The address columns of a window's ``traceroute_hops`` and ``mda_links`` rows."""
_FAILED: set[str] = set()


def _addresses(row_sets: Iterable[Iterable[Mapping[str, Any]]]) -> Iterator[str]:
    """The addresses of rows per reply or per result (``replies``: ``consumers.graph.window.
    read_path_rows``, the address third in each reply)."""
    for rows in row_sets:
        for row in rows:
            for name in WINDOW_ADDRESS_FIELDS:
                if value := row.get(name):
                    yield str(value)
            for reply in row.get("replies") or ():
                if reply[2]:
                    yield str(reply[2])


def prime_enricher(storage: Any, enricher: Enricher,
                   *row_sets: Iterable[Mapping[str, Any]]) -> int:
    """Put ClickHouse's claims of the rows' addresses that the enricher has not cached into
    its cache (:meth:`Enricher.prime`); returns how many. The Python lookups stay the
    fallback: for what the query does not cover, and for a store that cannot load the
    dictionaries (logged once, then not asked again in this process)."""
    if storage.dsn in _FAILED or not enricher.sources:
        return 0
    addresses = enricher.uncached(_addresses(row_sets))
    if not addresses:
        return 0
    try:
        found: dict[str, tuple[GeoClaim, ...]] = {}
        for at in range(0, len(addresses), _QUERY_ADDRESSES):
            found.update(claims_from_clickhouse(storage, addresses[at:at + _QUERY_ADDRESSES],
                                                enricher.sources))
    except StorageError as exc:
        _FAILED.add(storage.dsn)
        log.warning("geo claims from ClickHouse unavailable (%s); looked up in Python", exc)
        return 0
    enricher.prime(found)
    return len(found)
