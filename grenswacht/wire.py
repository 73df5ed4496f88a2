"""Query results and parameters on the endpoint's wire, without losing their Python types.

``POST /sql`` answers ``{"columns", "types", "rows", "truncated"}``: ``types`` are the
ClickHouse type names, and :func:`decode_rows` uses them to turn the JSON values back into
what clickhouse-connect gives locally (``datetime``, ``date``, ``UUID``, ``IPv4Address``,
``Decimal``, tuples, ``nan``, 128-bit integers, bytes), so a command gets the same rows
whether it reads through ``grenswacht run`` or the store itself.

JSON cannot carry every value: :func:`encode_rows` writes non-finite floats as ``"nan"`` /
``"inf"`` / ``"-inf"``, integers beyond 64 bits and decimals as strings, bytes as base64
(``FixedString``), map keys as strings; the decoder reverses each by type.

Parameters travel the other way (:func:`encode_parameters`): datetimes are sent the way
clickhouse-connect binds them (UTC, ``YYYY-MM-DD hh:mm:ss``), so the engine sees the same
text on both paths.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

Codec = Callable[[Any], Any]

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _identity(value: Any) -> Any:
    return value


def split_type(name: str) -> tuple[str, list[str]]:
    """``Array(Tuple(a String, b UInt8))`` -> (``Array``, [``Tuple(a String, b UInt8)``])."""
    name = name.strip()
    open_at = name.find("(")
    if open_at < 0 or not name.endswith(")"):
        return name, []
    args: list[str] = []
    depth, quote, start = 0, "", open_at + 1
    for index in range(open_at + 1, len(name) - 1):
        char = name[index]
        if quote:
            if char == quote and name[index - 1] != "\\":
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(name[start:index].strip())
            start = index + 1
    args.append(name[start:-1].strip())
    return name[:open_at], [a for a in args if a]


def _tuple_element(arg: str) -> tuple[str | None, str]:
    """``x Int8`` / ```x` Int8`` -> (``x``, ``Int8``); ``Int8`` -> (None, ``Int8``)."""
    if arg.startswith("`"):
        end = arg.index("`", 1)
        return arg[1:end], arg[end + 1:].strip()
    head, _, rest = arg.partition(" ")
    if rest and "(" not in head:
        return head, rest.strip()
    return None, arg


# -- decoding (wire -> Python) -----------------------------------------------------------------
def _float(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value


def _integer(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


def _datetime(value: Any) -> Any:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _date(value: Any) -> Any:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


_SCALAR_DECODERS: dict[str, Codec] = {
    "Float32": _float, "Float64": _float, "BFloat16": _float,
    "Int128": _integer, "Int256": _integer, "UInt128": _integer, "UInt256": _integer,
    "DateTime": _datetime, "DateTime64": _datetime, "Date": _date, "Date32": _date,
    "UUID": lambda v: uuid.UUID(v) if isinstance(v, str) else v,
    "IPv4": lambda v: ipaddress.IPv4Address(v) if isinstance(v, str) else v,
    "IPv6": lambda v: ipaddress.IPv6Address(v) if isinstance(v, str) else v,
    "Decimal": lambda v: Decimal(v) if isinstance(v, str) else v,
    "FixedString": lambda v: base64.b64decode(v) if isinstance(v, str) else v,
}


def decoder(type_name: str) -> Codec:
    """The function turning one wire value of ``type_name`` into its Python value."""
    base, args = split_type(type_name)
    if base.startswith("Decimal"):
        base = "Decimal"
    if base in ("Nullable", "LowCardinality") and args:
        inner = decoder(args[0])
        return inner if inner is _identity else (lambda v: None if v is None else inner(v))
    if base == "Array" and args:
        item = decoder(args[0])
        return _identity if item is _identity else (
            lambda v: None if v is None else [item(x) for x in v])
    if base == "Tuple" and args:
        elements = [_tuple_element(a) for a in args]
        codecs = [decoder(t) for _, t in elements]
        if all(name is not None for name, _ in elements):
            names = [str(name) for name, _ in elements]
            return lambda v: None if v is None else {
                n: c(v[n]) for n, c in zip(names, codecs, strict=True)}
        return lambda v: None if v is None else tuple(
            c(x) for c, x in zip(codecs, v, strict=True))
    if base == "Map" and len(args) == 2:
        key, value = decoder(args[0]), decoder(args[1])
        key_base = split_type(args[0].removeprefix("LowCardinality(").rstrip(")"))[0]
        numeric_key = key_base.startswith(("Int", "UInt"))
        return lambda v: None if v is None else {
            (int(k) if numeric_key else key(k)): value(x) for k, x in v.items()}
    return _SCALAR_DECODERS.get(base, _identity)


def decode_rows(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    codecs = [decoder(t) for t in types]
    if all(c is _identity for c in codecs):
        return [tuple(row) for row in rows]
    return [tuple(c(v) for c, v in zip(codecs, row, strict=True)) for row in rows]


# -- encoding (Python -> wire) -----------------------------------------------------------------
def _wire(value: Any) -> Any:
    """A JSON-safe form of one value (recursive; orjson handles datetime, date and UUID)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _UINT64_MAX else str(value)
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | Decimal):
        return str(value)
    return value


def _needs_walk(type_name: str) -> bool:
    return any(part in type_name for part in (
        "Float", "Int128", "Int256", "Decimal", "FixedString", "Map", "IPv", "Tuple"))


def encode_rows(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    walk = [_needs_walk(t) for t in types]
    if not any(walk):
        return [list(row) for row in rows]
    return [[_wire(v) if w else v for w, v in zip(walk, row, strict=True)] for row in rows]


def dumps(document: Any) -> bytes:
    """JSON bytes of a wire document (rows already passed through :func:`encode_rows`)."""
    return orjson.dumps(document, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters as JSON values the endpoint binds like clickhouse-connect would."""
    return {str(k): _parameter(v) for k, v in (parameters or {}).items()}


def _parameter(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_parameter(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _parameter(v) for k, v in value.items()}
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address | Decimal):
        return str(value)
    return value
