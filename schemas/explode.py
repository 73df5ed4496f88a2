"""Traceroutes that ClickHouse explodes into ``traceroute_hops`` itself (issue 17).

The normaliser (:mod:`schemas.normalize`) builds one Python tuple per reply: ~37 rows of 29
columns per traceroute, which the client then serialises column by column. For the common,
regular result this module instead *checks* the result against the same limits (every value
against its column, :mod:`schemas.column_limits` through the normaliser's bound limits) and
hands ClickHouse one JSON line: the payload as received, with the envelope the normaliser
derives (source, ids, timestamp, address family, protocol, …) put in front as
``"envelope": [...]``. The materialized view ``traceroute_explode``
(``schemas/clickhouse/050_traceroute_explode.sql``) turns each line into the very rows
:func:`schemas.normalize.normalize_into` makes of it — ``tests/schemas/test_explode.py``
compares them row for row over the whole corpus, every firmware generation included.

A result is *regular* when every value the view reads has the type and range the view
expects and nothing would be nulled or refused: then the two derivations cannot differ.
Anything else — an odd type (``"fw": "4570"``, a float TTL, a numeric ICMP error), a value
the normaliser nulls (with a note) or refuses (a dead letter), an ``icmpext`` whose text is
not what the normaliser writes — returns False here, and the caller normalises the result in
Python as before; so the policy of :mod:`schemas.normalize` (tolerant, dead letters with a
reason) stays the one policy. Should ClickHouse still refuse a line (a duplicate key: the
JSON parser refuses those, orjson keeps the last), the sink isolates it and normalises it in
Python (:mod:`consumers.sink`).

This is the second module that knows Atlas keys (the view's SQL is the third); both mirror
``normalize._traceroute`` and change with it (``ROWS_VERSION``).
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from itertools import chain, repeat
from operator import is_not
from typing import Any

import orjson

from schemas.errors import MalformedResult
from schemas.normalize import (
    MAX_ADDRESS_LEN,
    MAX_HOP,
    MAX_INNER_TTL,
    MAX_LATE,
    MAX_MTU,
    MAX_NAME_LEN,
    MAX_PARIS_ID,
    MAX_REPLY_INDEX,
    MAX_REPLY_SIZE,
    MAX_RTT_MS,
    MAX_TTL,
    MPLS_LABEL,
    RowBatch,
    _af,
    _envelope,
    _opt_int,
    _protocol,
    _str,
)

INPUT_TABLE = "traceroute_input"
"""The Null-engine table the lines go into (its view writes ``traceroute_hops``)."""
INPUT_FORMAT = "JSONEachRow"
INPUT_SETTINGS = {
    "input_format_skip_unknown_fields": 1,
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_ignore_unknown_keys_in_named_tuple": 1,
    "input_format_json_defaults_for_missing_elements_in_named_tuple": 1,
    "input_format_null_as_default": 1,
    "input_format_json_read_numbers_as_strings": 0,
    "input_format_json_read_bools_as_numbers": 0,
    "input_format_json_read_bools_as_strings": 0,
    "input_format_json_read_arrays_as_strings": 0,
    "precise_float_parsing": 1,
}
"""Settings of the insert: pinned, so a server's different defaults cannot change the rows
(numbers and booleans are never read as strings, floats are parsed exactly as orjson does)."""

_PREFIX = b'{"envelope":'
_DETAIL_KEYS = frozenset(("from", "rtt", "size", "ttl"))


class _Irregular(Exception):  # noqa: N818 - control flow inside this module only
    """The result is valid or not, but not for the fast path: normalise it in Python."""


_NONE = type(None)
_FLOAT_TYPES: frozenset[type] = frozenset((float, int, _NONE))
_INT_TYPES: frozenset[type] = frozenset((int, _NONE))
_STR_TYPES: frozenset[type] = frozenset((str, _NONE))
_BOOL_TYPES: frozenset[type] = frozenset((bool, _NONE))
_LIST_TYPES: frozenset[type] = frozenset((list, _NONE))
_STAR = {"x": "*"}
_NOT_NONE = partial(is_not, None)
_INT_DETAILS = (("ittl", MAX_INNER_TTL), ("late", MAX_LATE), ("mtu", MAX_MTU))


def _values(items: list[Any], key: str) -> list[Any]:
    """``item.get(key)`` of every item (a C loop: map over ``dict.get``)."""
    return list(map(dict.get, items, repeat(key)))


def _present(values: list[Any]) -> list[Any]:
    return values if None not in values else list(filter(_NOT_NONE, values))


def _numbers(values: list[Any], types: frozenset[type], high: float) -> None:
    """Every value of ``types`` and, when present, in ``[0, high]``."""
    if not types.issuperset(map(type, values)):
        raise _Irregular
    present = _present(values)
    if present and (min(present) < 0 or max(present) > high):
        raise _Irregular


def _texts(values: list[Any], limit: int = MAX_ADDRESS_LEN) -> None:
    if not _STR_TYPES.issuperset(map(type, values)):
        raise _Irregular
    if max(map(len, _present(values)), default=0) > limit:
        raise _Irregular


def _icmpext(icmpext: Any) -> bytes:
    """The text the normaliser stores of ``icmpext`` (the view reads the payload's own text,
    which the caller checks to be this); irregular unless its MPLS labels are plain."""
    if type(icmpext) is not dict:
        raise _Irregular
    objects = icmpext.get("obj")
    if objects is not None:
        if type(objects) is not list:
            raise _Irregular
        for obj in objects:
            if type(obj) is not dict:
                raise _Irregular
            entries = obj.get("mpls")
            if entries is None:
                continue
            if type(entries) is not list:
                raise _Irregular
            for entry in entries:
                if type(entry) is not dict:
                    raise _Irregular
                if "label" in entry:
                    label = entry["label"]
                    if type(label) is not int or not MPLS_LABEL.fits([label]):
                        raise _Irregular
    return orjson.dumps(icmpext)


def _replies(replies: list[Any], texts: Counter[bytes]) -> None:
    """Check every reply of a result at once: per key, the values of all replies (the
    checks the normaliser makes per reply, as C loops over lists)."""
    if not replies:
        return
    if set(map(type, replies)) != {dict}:
        raise _Irregular
    _texts(_values(replies, "from"))
    _numbers(_values(replies, "rtt"), _FLOAT_TYPES, MAX_RTT_MS)
    _numbers(_values(replies, "size"), _INT_TYPES, MAX_REPLY_SIZE)
    _numbers(_values(replies, "ttl"), _INT_TYPES, MAX_TTL)
    keys = set().union(*replies)
    if keys <= _DETAIL_KEYS:
        return  # the common reply: from, rtt, size, ttl, nothing else to check
    if "x" in keys:  # the normaliser ignores everything else of a "*" reply
        for reply in replies:
            if "x" in reply and reply != _STAR and reply.get("from") is None and (
                    reply["x"] == "*"):
                raise _Irregular
    for key, high in _INT_DETAILS:
        if key in keys:
            _numbers(_values(replies, key), _INT_TYPES, high)
    if "dup" in keys and not _BOOL_TYPES.issuperset(map(type, _values(replies, "dup"))):
        raise _Irregular
    if "edst" in keys:
        _texts(_values(replies, "edst"))
    if "err" in keys and not _STR_TYPES.issuperset(map(type, _values(replies, "err"))):
        raise _Irregular
    if "icmpext" in keys:
        for icmpext in _values(replies, "icmpext"):
            if icmpext is not None:
                texts[_icmpext(icmpext)] += 1


def _hops(hops: Any, texts: Counter[bytes]) -> int:
    """Check the hops (per key over all hops, as for the replies); return the rows
    ClickHouse makes of them."""
    if type(hops) is not list:
        raise _Irregular
    if not hops:
        return 0
    if set(map(type, hops)) != {dict}:
        raise _Irregular
    given = _values(hops, "hop")
    numbers = given
    errors = _values(hops, "error")
    if errors.count(None) != len(errors):
        _texts(errors, MAX_NAME_LEN)
        if None in given:  # a hop that only says why it failed: the normaliser's hop 0
            numbers = [0 if number is None and error is not None else number
                       for number, error in zip(given, errors, strict=True)]
    if set(map(type, numbers)) != {int}:
        raise _Irregular
    present = _present(given)
    if min(present, default=1) < 1 or max(present, default=1) > MAX_HOP or (
            len(set(numbers)) != len(numbers)):
        raise _Irregular
    lists = _values(hops, "result")
    if not _LIST_TYPES.issuperset(map(type, lists)):
        raise _Irregular
    filled = _present(lists)
    sizes = list(map(len, filled))
    if sizes and max(sizes) > MAX_REPLY_INDEX + 1:
        raise _Irregular
    _replies(list(chain.from_iterable(filled)), texts)
    return sum(sizes) + len(lists) - len(sizes) + sizes.count(0)


def explode_into(result: Any, batch: RowBatch, *, source: str, payload: bytes) -> bool:
    """Append ``result`` to ``batch`` as a line for ClickHouse to explode (and its
    ``raw_results`` row); return False, appending nothing, when it must be normalised in
    Python (:func:`schemas.normalize.normalize_into`) instead."""
    if (type(result) is not dict or result.get("type") != "traceroute"
            or payload[:1] != b"{" or b"\n" in payload or b"\r" in payload):
        return False
    try:
        msm, prb, ts, firmware, vp = _envelope(result)
        texts: Counter[bytes] = Counter()
        rows = _hops(result.get("result"), texts)
        if texts:
            if b"\\" in payload:  # escapes: the payload's text may differ from orjson's
                return False
            for text, count in texts.items():
                if payload.count(b'"icmpext":' + text) != count:
                    return False
        envelope = (
            source, msm, prb, ts // 1000, vp, _af(result, firmware), _protocol(result),
            _opt_int(result.get("paris_id"), "paris_id", MAX_PARIS_ID), firmware,
            _str(result.get("dst_addr"), "dst_addr"),
            _str(result.get("dst_name"), "dst_name", MAX_NAME_LEN),
            _str(result.get("src_addr"), "src_addr"), _str(result.get("from"), "from"),
        )
        destination = _str(result.get("dst_name") or result.get("dst_addr")
                           or result.get("addr"), "destination", MAX_NAME_LEN)
        line = _PREFIX + orjson.dumps(envelope) + b"," + payload[1:]
    except (_Irregular, MalformedResult, TypeError, ValueError, OverflowError, KeyError,
            AttributeError):
        return False
    lines = batch.tables[INPUT_TABLE]
    batch.spans.append((INPUT_TABLE, len(lines), len(lines) + 1))
    lines.append((line,))
    batch.tables["raw_results"].append(
        (source, msm, prb, ts, "traceroute", destination, vp, firmware, payload, []))
    batch.exploded_rows.append(rows)
    batch.results += 1
    batch.counts["traceroute"] += 1
    return True


__all__ = ["INPUT_FORMAT", "INPUT_SETTINGS", "INPUT_TABLE", "explode_into"]
