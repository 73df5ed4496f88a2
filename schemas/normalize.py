"""RIPE Atlas result JSON -> table rows. The ONLY code that knows Atlas keys.

Pure: a decoded result (dict) in, rows appended to a columnar :class:`RowBatch` out; no I/O.
ripe-atlas-sagan is the reference parser: ``tests/schemas/test_normalize_vs_sagan.py``
checks that this module extracts the same hops, replies, answers and ping figures as sagan
for every result in the shared corpus. This module is the hot loop of ingest, so it writes
straight into column lists instead of building row objects; it is longer than 400 lines
because the three result types share the envelope and validation code below.

Policy (sagan's ``on_error``/``on_malformation``, made explicit):

* measurement errors are data: a timeout, ``*``, an ICMP error code, a hop ``error``, a DNS
  ``error`` or an undecodable ``abuf`` are kept in the rows (``is_timeout``, ``reply_error``,
  ``hop_error``, ``response_error``);
* a result that is not a RIPE Atlas result, or carries absurd values (negative RTT, hop
  300, timestamp in 1970, firmware 0) raises :class:`~schemas.errors.MalformedResult`;
  a type we do not ingest raises :class:`~schemas.errors.UnsupportedResult`. The caller
  sends it to the dead letters with the reason. A failed result leaves no partial rows.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson

from schemas.column_limits import limit
from schemas.errors import MalformedResult, UnsupportedResult

# -- table columns (must match schemas/clickhouse/*.sql) ---------------------------------

ENVELOPE = ("source", "measurement_id", "probe_id", "timestamp", "vantage_point")

RAW_COLUMNS = ENVELOPE[:-1] + (
    "result_type", "destination", "vantage_point", "firmware", "payload", "notes",
)
TRACEROUTE_COLUMNS = ENVELOPE + (
    "address_family", "protocol", "paris_id", "firmware", "destination_address",
    "destination_name", "source_address", "probe_public_address", "hop", "hop_error",
    "reply_index", "reply_address", "is_timeout", "rtt_ms", "size", "reply_ttl", "inner_ttl",
    "late_by", "is_duplicate", "different_destination", "reply_error", "mtu", "mpls_labels",
    "icmp_extensions",
)
DNS_COLUMNS = ENVELOPE + (
    "address_family", "protocol", "firmware", "response_index", "resolver_address",
    "query_name", "query_class", "query_type", "rcode", "response_time_ms", "response_error",
    "nsid", "section", "record_index", "record_name", "record_type", "record_ttl",
    "record_data",
)
PING_COLUMNS = ENVELOPE + (
    "address_family", "protocol", "firmware", "destination_address", "destination_name",
    "source_address", "packets_sent", "packets_received", "duplicates", "rtt_min_ms",
    "rtt_avg_ms", "rtt_max_ms", "size",
)

MDA_COLUMNS = ENVELOPE + (
    "address_family", "protocol", "firmware", "destination_address", "destination_name",
    "source_address", "confidence", "probes_sent", "complete", "ttl", "link_index",
    "near_address", "far_address", "flow_ids",
)

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    # in the order a sink writes them: raw_results last, so a raw row marks its result
    # complete (its child rows were acknowledged before it; docs/architecture.md)
    "traceroute_hops": TRACEROUTE_COLUMNS,
    "dns_answers": DNS_COLUMNS,
    "ping_results": PING_COLUMNS,
    "mda_links": MDA_COLUMNS,
    "raw_results": RAW_COLUMNS,
}
RESULT_TABLE = {
    "traceroute": "traceroute_hops", "dns": "dns_answers", "ping": "ping_results",
    "mda": "mda_links",
}
EXPLODE_TABLES = {"traceroute_input": "traceroute_hops"}
"""Null-engine input tables whose materialized view writes a child table: the lines of
results that ClickHouse explodes itself (:mod:`schemas.explode`), one per result."""
SUPPORTED_TYPES = tuple(RESULT_TABLE)
KNOWN_UNSUPPORTED = ("sslcert", "http", "ntp", "wifi")

ROWS_VERSION = 2
"""Version of the rows this module makes of a payload. It is part of every insert
deduplication token (``consumers.ingest``), so rows fixed by a new version are not dropped
as duplicates of a replayed batch; bump it whenever the rows of some payload change
(``tests/schemas/test_rows_version.py`` holds the digest of the fixtures' rows)."""

# -- limits: the sanity limits (values beyond them are absurd, not measurements), bound
# -- to what the columns hold (schemas/column_limits.py reads the DDL): never wider

_TS = limit("raw_results", "timestamp")
MIN_TIMESTAMP = max(946_684_800, _TS.low or 0)  # 2000-01-01; RIPE Atlas started in 2010
MAX_TIMESTAMP = min(4_102_444_800, _TS.high or 0)  # 2100-01-01
MAX_RTT_MS = 300_000.0  # five minutes; Atlas waits seconds, not minutes
MAX_HOP = min(255, limit("traceroute_hops", "hop").high or 0)
MAX_ADDRESS_LEN = 64
MAX_NAME_LEN = 1024
MAX_ID = min(2**63 - 1, limit("raw_results", "measurement_id").high or 0,
             limit("raw_results", "probe_id").high or 0)
MAX_FIRMWARE = min(1_000_000, limit("raw_results", "firmware").high or 0)
MAX_COUNT = min(2**31, limit("ping_results", "packets_sent").high or 0)


def _high(table: str, column: str) -> int:
    high = limit(table, column).high
    if high is None:
        raise TypeError(f"{table}.{column} has no integer range")
    return high


MAX_REPLY_INDEX = _high("traceroute_hops", "reply_index")
MAX_REPLY_SIZE = _high("traceroute_hops", "size")
MAX_TTL = _high("traceroute_hops", "reply_ttl")
MAX_INNER_TTL = _high("traceroute_hops", "inner_ttl")
MAX_LATE = _high("traceroute_hops", "late_by")
MAX_MTU = _high("traceroute_hops", "mtu")
MAX_PARIS_ID = _high("traceroute_hops", "paris_id")
MPLS_LABEL = limit("traceroute_hops", "mpls_labels")
MAX_RESPONSE_INDEX = _high("dns_answers", "response_index")
MAX_RECORD_INDEX = _high("dns_answers", "record_index")
MAX_RECORD_TTL = _high("dns_answers", "record_ttl")
MAX_PING_SIZE = _high("ping_results", "size")
MAX_LINK_INDEX = _high("mda_links", "link_index")
MAX_FLOW_ID = min(2**31, _high("mda_links", "flow_ids"))
MAX_MDA_TTL = min(MAX_HOP - 1, _high("mda_links", "ttl"))
PROTOCOLS = {"ICMP": "ICMP", "I": "ICMP", "UDP": "UDP", "U": "UDP", "TCP": "TCP", "T": "TCP"}


def epoch_seconds(value: Any) -> int:
    """Seconds since the epoch of a row timestamp, whatever carried it: the DateTime64(3)
    ticks (milliseconds) of these rows, a datetime read back from ClickHouse, or seconds
    (``toUnixTimestamp`` in SQL). Within the accepted range (:data:`MIN_TIMESTAMP` ..
    :data:`MAX_TIMESTAMP`) seconds stay below 10**10 and milliseconds above 10**11, so
    the two cannot be confused."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp())
    number = int(value)
    return number // 1000 if number >= 10**11 else number


class RowBatch:
    """Rows for every table, appended to by :func:`normalize_into`.

    Each table holds a list of tuples in :data:`TABLE_COLUMNS` order (the cheapest shape
    to build in Python); :meth:`columns` transposes them for a columnar insert.
    """

    __slots__ = ("tables", "results", "counts", "notes", "nulled", "spans", "exploded_rows")

    def __init__(self) -> None:
        self.tables: dict[str, list[tuple[Any, ...]]] = {
            table: [] for table in (*TABLE_COLUMNS, *EXPLODE_TABLES)}
        self.results = 0
        self.counts: dict[str, int] = dict.fromkeys(RESULT_TABLE, 0)
        self.notes: list[tuple[str, str]] = []
        """(field, why) of the values of the result being normalised that were nulled (its
        ``raw_results.notes``)."""
        self.nulled: dict[str, int] = {}
        """Values nulled per field over the batch (metrics)."""
        self.spans: list[tuple[str, int, int]] = []
        """Per result, in order: (its child table, first row, end row); its raw_results row
        has the result's index (a sink splits a batch by these). A result that ClickHouse
        explodes has one row (its line) in an :data:`EXPLODE_TABLES` table."""
        self.exploded_rows: list[int] = []
        """Per line of the explode tables: the rows ClickHouse makes of it."""

    def rows(self, table: str) -> int:
        return len(self.tables[table])

    def columns(self, table: str) -> list[list[Any]] | list[tuple[Any, ...]]:
        """The rows of ``table`` transposed into one sequence per column."""
        rows = self.tables[table]
        if not rows:
            return [[] for _ in TABLE_COLUMNS[table]]
        return list(zip(*rows, strict=True))

    def as_dicts(self, table: str) -> list[dict[str, Any]]:
        """Rows of ``table`` as dicts (for tests and small outputs, not the hot path)."""
        names = TABLE_COLUMNS[table]
        return [dict(zip(names, row, strict=True)) for row in self.tables[table]]

    def clear(self) -> None:
        for rows in self.tables.values():
            rows.clear()
        self.results = 0
        self.counts = dict.fromkeys(RESULT_TABLE, 0)
        self.notes = []
        self.nulled = {}
        self.spans = []
        self.exploded_rows = []

    def null(self, field: str, why: str) -> None:
        """Record that an optional value of the current result was nulled, and why."""
        self.notes.append((field, why[:200]))

    def _mark(self) -> dict[str, int]:
        return {table: len(rows) for table, rows in self.tables.items()}

    def _rollback(self, mark: dict[str, int]) -> None:
        for table, length in mark.items():
            del self.tables[table][length:]


# -- helpers ----------------------------------------------------------------------------


def _int(value: Any, field: str, low: int = 0, high: int = MAX_ID) -> int:
    if isinstance(value, bool):
        raise MalformedResult("bad_value", f"{field} is a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)  # API v1 era results carry "fw": "4570"
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise MalformedResult("bad_value", f"{field} is not an integer: {str(value)[:40]!r}")
    if not low <= number <= high:
        raise MalformedResult("out_of_range", f"{field}={number} outside [{low}, {high}]")
    return number


def _opt_int(value: Any, field: str, high: int = MAX_ID) -> int | None:
    if value is None:
        return None
    return _int(value, field, 0, high)


def _nullable_int(value: Any, field: str, high: int, batch: RowBatch) -> int | None:
    """An optional integer: out of its column's range it is nulled (with the reason kept in
    ``batch``); a value of the wrong type is still a MalformedResult."""
    if value is None:
        return None
    if type(value) is int and not 0 <= value <= high:
        batch.null(field, f"{value} outside [0, {high}]: nulled")
        return None
    return _int(value, field, 0, high)


def _rtt(value: Any, field: str = "rtt") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResult("bad_value", f"{field} is not a number: {str(value)[:40]!r}")
    if value < 0:
        raise MalformedResult("negative_rtt", f"{field}={value}")
    if value > MAX_RTT_MS:
        raise MalformedResult("out_of_range", f"{field}={value} ms exceeds {MAX_RTT_MS:.0f} ms")
    return float(value)


def _str(value: Any, field: str, limit: int = MAX_ADDRESS_LEN) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise MalformedResult("bad_value", f"{field} is not a string")
    if len(value) > limit:
        raise MalformedResult("oversized_field", f"{field} has {len(value)} characters")
    return value


def _envelope(result: dict[str, Any]) -> tuple[int, int, int, int, str]:
    """(measurement_id, probe_id, timestamp_ms, firmware, vantage_point) or MalformedResult."""
    for key in ("msm_id", "prb_id", "timestamp", "fw"):
        if key not in result:
            raise MalformedResult("missing_key", f"no {key!r}: not a RIPE Atlas result")
    firmware = _int(result["fw"], "fw", 0, MAX_FIRMWARE)
    if firmware == 0:
        raise MalformedResult("unknown_firmware", "fw=0 (sagan: Unknown firmware: 0)")
    return (
        _int(result["msm_id"], "msm_id"),
        _int(result["prb_id"], "prb_id"),
        # rows carry DateTime64(3) ticks: epoch milliseconds
        _int(result["timestamp"], "timestamp", MIN_TIMESTAMP, MAX_TIMESTAMP) * 1000,
        firmware,
        _str(result.get("gw_vp"), "gw_vp", 128),
    )


def _protocol(result: dict[str, Any], default: str = "") -> str:
    value = result.get("proto", result.get(" proto", default))
    if value is None or value == "":
        return default
    protocol = PROTOCOLS.get(str(value).strip().upper())
    if protocol is None:
        raise MalformedResult("bad_value", f"unknown protocol {str(value)[:20]!r}")
    return protocol


def _af(result: dict[str, Any], firmware: int) -> int:
    value = result.get("pf") if 0 < firmware < 4460 and "pf" in result else result.get("af")
    if value is None:
        return 0
    af = _int(value, "af", 0, 6)
    if af not in (0, 4, 6):
        raise MalformedResult("bad_value", f"af={af}")
    return af


def result_type(result: Any) -> str:
    """The Atlas result type, or raise MalformedResult / UnsupportedResult."""
    if not isinstance(result, dict):
        raise MalformedResult("not_an_object", f"a JSON {type(result).__name__}, not an object")
    kind = result.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedResult("missing_key", "no 'type': not a RIPE Atlas result")
    kind = kind.lower()
    if kind not in RESULT_TABLE:
        raise UnsupportedResult("unsupported_type", f"type {kind[:40]!r} is not ingested")
    return kind


# -- traceroute -------------------------------------------------------------------------


def _mpls_labels(icmpext: Any, batch: RowBatch) -> list[int]:
    labels: list[int] = []
    if isinstance(icmpext, dict):
        for obj in icmpext.get("obj") or ():
            if isinstance(obj, dict):
                for entry in obj.get("mpls") or ():
                    if not isinstance(entry, dict) or "label" not in entry:
                        continue
                    label = entry["label"]
                    if type(label) is int and MPLS_LABEL.fits([label]):
                        labels.append(label)
                    else:  # kept in icmp_extensions and raw_results, not in mpls_labels
                        batch.null("mpls label", f"{str(label)[:30]} not a {MPLS_LABEL.base} "
                                                 "element: left out of mpls_labels")
    return labels


def _reply_details(reply: dict[str, Any], batch: RowBatch) -> tuple[Any, ...]:
    """(inner_ttl, late_by, is_duplicate, different_destination, reply_error, mtu,
    mpls_labels, icmp_extensions) of a reply that has more than from/rtt/size/ttl."""
    ittl = reply.get("ittl")
    late = reply.get("late")
    edst = reply.get("edst")
    err = reply.get("err")
    mtu = reply.get("mtu")
    icmpext = reply.get("icmpext")
    return (
        None if ittl is None else _int(ittl, "ittl", 0, MAX_INNER_TTL),
        0 if late is None else _int(late, "late", 0, MAX_LATE),
        bool(reply.get("dup")),
        "" if edst is None else _str(edst, "edst"),
        "" if err is None else str(err)[:32],
        _nullable_int(mtu, "mtu", MAX_MTU, batch),
        [] if icmpext is None else _mpls_labels(icmpext, batch),
        "" if icmpext is None else orjson.dumps(icmpext).decode(),
    )


_PLAIN_DETAILS: tuple[Any, ...] = (None, 0, False, "", "", None, [], "")


def _traceroute(result: dict[str, Any], batch: RowBatch, head: tuple[Any, ...]) -> None:
    source, msm, prb, ts, vp, firmware = head
    hops = result.get("result")
    if not isinstance(hops, list):
        raise MalformedResult("bad_value", "traceroute 'result' is not a list (legacy format)")
    paris = result.get("paris_id")
    envelope = (
        source, msm, prb, ts, vp, _af(result, firmware), _protocol(result),
        _opt_int(paris, "paris_id", MAX_PARIS_ID), firmware,
        _str(result.get("dst_addr"), "dst_addr"),
        _str(result.get("dst_name"), "dst_name", MAX_NAME_LEN),
        _str(result.get("src_addr"), "src_addr"), _str(result.get("from"), "from"),
    )
    append = batch.tables["traceroute_hops"].append
    seen: set[int] = set()
    for raw_hop in hops:
        if not isinstance(raw_hop, dict):
            raise MalformedResult("bad_value", "a traceroute hop is not an object")
        hop = raw_hop.get("hop")
        hop_error = raw_hop.get("error")
        if hop is None and hop_error is not None:
            hop = 0  # the whole trace failed before hop 1 ("name resolution failed")
        elif type(hop) is not int or not 1 <= hop <= MAX_HOP:
            raise MalformedResult("out_of_range", f"hop={str(hop)[:20]} outside [1, {MAX_HOP}]")
        if hop in seen:  # (hop, reply_index) is part of the row key: it would collapse
            raise MalformedResult("duplicate_key", f"hop {hop} appears twice")
        seen.add(hop)
        hop_error = "" if hop_error is None else _str(hop_error, "hop error", MAX_NAME_LEN)
        replies = raw_hop.get("result")
        if not replies:
            # a hop that only says why it failed ("connect failed: Network is unreachable")
            append(envelope + (hop, hop_error, 0, "", False, None, None, None) + _PLAIN_DETAILS)
            continue
        if not isinstance(replies, list):
            raise MalformedResult("bad_value", f"hop {hop} 'result' is not a list")
        if len(replies) > MAX_REPLY_INDEX + 1:
            raise MalformedResult("out_of_range", f"hop {hop} has {len(replies)} replies; "
                                                  f"reply_index holds {MAX_REPLY_INDEX + 1}")
        index = 0
        for reply in replies:
            if type(reply) is not dict:
                raise MalformedResult("bad_value", f"hop {hop} reply is not an object")
            address = reply.get("from")
            if address is None and reply.get("x") == "*":
                append(envelope + (hop, hop_error, index, "", True, None, None, None)
                       + _PLAIN_DETAILS)
                index += 1
                continue
            if address is not None and (type(address) is not str or len(address) > 64):
                if type(address) is not str:
                    raise MalformedResult("bad_value", f"hop {hop} reply 'from' is not a string")
                _str(address, "reply from")
            rtt = reply.get("rtt")
            if rtt is not None:
                if type(rtt) is not float or not 0.0 <= rtt <= MAX_RTT_MS:
                    rtt = _rtt(rtt)
            size = reply.get("size")
            if size is not None and (type(size) is not int or not 0 <= size <= MAX_REPLY_SIZE):
                size = _nullable_int(size, "size", MAX_REPLY_SIZE, batch)
            ttl = reply.get("ttl")
            if ttl is not None and (type(ttl) is not int or not 0 <= ttl <= MAX_TTL):
                ttl = _opt_int(ttl, "ttl", MAX_TTL)
            plain = len(reply) == 4 and address is not None and rtt is not None and (
                size is not None and ttl is not None
            )
            details = _PLAIN_DETAILS if plain else _reply_details(reply, batch)
            append(envelope + (hop, hop_error, index, address or "",
                               address is None and rtt is None, rtt, size, ttl) + details)
            index += 1


# -- DNS --------------------------------------------------------------------------------


def _decode_abuf(abuf: str) -> Any:
    import dns.exception
    import dns.message

    try:
        return dns.message.from_wire(
            base64.b64decode(abuf, validate=False), ignore_trailing=True, one_rr_per_rrset=True
        )
    except (binascii.Error, dns.exception.DNSException, ValueError, UnicodeError) as exc:
        raise ValueError(f"abuf undecodable: {type(exc).__name__}: {str(exc)[:80]}") from exc


def _nsid(message: Any) -> str:
    for option in getattr(message, "options", ()) or ():
        if getattr(option, "otype", None) == 3:  # NSID, RFC 5001
            data = getattr(option, "nsid", None) or getattr(option, "data", b"")
            if isinstance(data, bytes | bytearray):
                return bytes(data).decode("utf-8", "replace")
            return str(data)
    return ""


def _rdata_text(rdata: Any) -> str:
    import dns.rdatatype

    if rdata.rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
        return "".join(s.decode("utf-8", "replace") for s in rdata.strings)
    return str(rdata.to_text())


def _dns_response(
    response: dict[str, Any], index: int, default_af: int, default_proto: str, default_dst: str,
    emit: Callable[..., None],
) -> None:
    af = _af(response, 5000) if "af" in response else default_af
    protocol = _protocol(response, default_proto)
    resolver = _str(response.get("dst_addr", default_dst), "dst_addr")
    error = response.get("error")
    body = response.get("result")
    base = {"af": af, "protocol": protocol, "index": index, "resolver": resolver}
    if error is not None or not isinstance(body, dict):
        if isinstance(error, dict):
            text = ", ".join(f"{k}: {v}" for k, v in error.items())
        else:
            text = str(error) if error is not None else "no result"
        emit(base, error=_str(text, "error", MAX_NAME_LEN))
        return
    rt = _rtt(body.get("rt"), "rt")
    abuf = body.get("abuf")
    if isinstance(abuf, str) and abuf:
        try:
            message = _decode_abuf(abuf)
        except ValueError as exc:
            emit(base, rt=rt, error=str(exc))
            return
        question = message.question[0] if message.question else None
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype

        query = {
            "qname": question.name.to_text() if question is not None else "",
            "qclass": dns.rdataclass.to_text(question.rdclass) if question is not None else "",
            "qtype": dns.rdatatype.to_text(question.rdtype) if question is not None else "",
            "rcode": dns.rcode.to_text(message.rcode()),
            "nsid": _nsid(message),
        }
        records = []
        for section_name, section in (
            ("answer", message.answer), ("authority", message.authority),
            ("additional", message.additional),
        ):
            for rrset in section:
                for rdata in rrset:
                    records.append((
                        section_name, rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype),
                        rrset.ttl, _rdata_text(rdata),
                    ))
        emit(base, rt=rt, query=query, records=records)
        return
    answers = body.get("answers")  # firmware < 4460: decoded by the probe
    records = []
    if isinstance(answers, list):
        for answer in answers:
            if isinstance(answer, dict):
                data = answer.get("RDATA", answer.get("MNAME", ""))
                if isinstance(data, list):
                    data = " ".join(str(d) for d in data)
                records.append((
                    "answer", str(answer.get("NAME", "")), str(answer.get("TYPE", "")),
                    answer.get("TTL"), str(data),
                ))
    emit(base, rt=rt, query={"qname": "", "qclass": "", "qtype": "", "rcode": "", "nsid": ""},
         records=records)


def _dns(result: dict[str, Any], batch: RowBatch, head: tuple[Any, ...]) -> None:
    source, msm, prb, ts, vp, firmware = head
    append = batch.tables["dns_answers"].append
    default_af = _af(result, firmware)
    default_proto = _protocol(result, "UDP")
    default_dst = result.get("dst_addr") or result.get("dst_name") or ""
    no_query = {"qname": "", "qclass": "", "qtype": "", "rcode": "", "nsid": ""}

    def emit(
        base: dict[str, Any], *, rt: float | None = None, error: str = "",
        query: dict[str, str] | None = None, records: list[tuple[Any, ...]] | None = None,
    ) -> None:
        query = query or no_query
        head = (
            source, msm, prb, ts, vp, base["af"], base["protocol"], firmware, base["index"],
            base["resolver"], query["qname"], query["qclass"], query["qtype"], query["rcode"],
            rt, error, query["nsid"],
        )
        records = records or [("", "", "", None, "")]
        if len(records) > MAX_RECORD_INDEX + 1:
            raise MalformedResult("out_of_range", f"DNS response {base['index']} has "
                                  f"{len(records)} records; record_index holds "
                                  f"{MAX_RECORD_INDEX + 1}")
        for record_index, (section, name, rtype, ttl, data) in enumerate(records):
            if ttl is not None and not (type(ttl) is int and 0 <= ttl <= MAX_RECORD_TTL):
                batch.null("record_ttl", f"{str(ttl)[:30]} not in [0, {MAX_RECORD_TTL}]: nulled")
                ttl = None
            append(head + (
                section, record_index, name, rtype, ttl, data[: MAX_NAME_LEN * 4],
            ))

    resultset = result.get("resultset")
    if isinstance(resultset, list):
        if len(resultset) > MAX_RESPONSE_INDEX + 1:
            raise MalformedResult("out_of_range", f"DNS resultset of {len(resultset)} "
                                  f"responses; response_index holds {MAX_RESPONSE_INDEX + 1}")
        for index, response in enumerate(resultset):
            if not isinstance(response, dict):
                raise MalformedResult("bad_value", "a DNS resultset entry is not an object")
            _dns_response(response, index, default_af, default_proto, default_dst, emit)
    elif "result" in result or "error" in result:
        _dns_response(result, 0, default_af, default_proto, default_dst, emit)
    else:
        raise MalformedResult("missing_key", "DNS result has no 'result', 'resultset' or 'error'")


# -- ping -------------------------------------------------------------------------------


def _ping(result: dict[str, Any], batch: RowBatch, head: tuple[Any, ...]) -> None:
    source, msm, prb, ts, vp, firmware = head

    def rtt_or_none(key: str) -> float | None:
        value = result.get(key)
        if value is None or (isinstance(value, int | float) and value == -1):
            return None  # Atlas writes -1 when nothing came back
        return _rtt(value, key)

    values = {
        "source": source, "measurement_id": msm, "probe_id": prb, "timestamp": ts,
        "vantage_point": vp, "address_family": _af(result, firmware),
        "protocol": _protocol(result, "ICMP"), "firmware": firmware,
        "destination_address": _str(result.get("dst_addr", result.get("addr")), "dst_addr"),
        "destination_name": _str(result.get("dst_name", result.get("name")), "dst_name",
                                 MAX_NAME_LEN),
        "source_address": _str(result.get("src_addr", result.get("from")), "src_addr"),
        "packets_sent": _int(result.get("sent", 0), "sent", 0, MAX_COUNT),
        "packets_received": _int(result.get("rcvd", 0), "rcvd", 0, MAX_COUNT),
        "duplicates": _int(result.get("dup", 0) or 0, "dup", 0, MAX_COUNT),
        "rtt_min_ms": rtt_or_none("min"), "rtt_avg_ms": rtt_or_none("avg"),
        "rtt_max_ms": rtt_or_none("max"),
        "size": _nullable_int(result.get("size"), "size", MAX_PING_SIZE, batch),
    }
    batch.tables["ping_results"].append(tuple(values[name] for name in PING_COLUMNS))


# -- MDA (grenswacht's own format, schemas/jsonschema/mda.schema.json) ---------------------


def _mda(result: dict[str, Any], batch: RowBatch, head: tuple[Any, ...]) -> None:
    source, msm, prb, ts, vp, firmware = head
    links = result.get("links")
    if not isinstance(links, list):
        raise MalformedResult("missing_key", "MDA result has no 'links' list")
    confidence = result.get("confidence")
    if not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise MalformedResult("bad_value", f"MDA confidence {str(confidence)[:20]!r}")
    envelope = (
        source, msm, prb, ts, vp, _af(result, firmware), _protocol(result, "UDP"), firmware,
        _str(result.get("dst_addr"), "dst_addr"),
        _str(result.get("dst_name"), "dst_name", MAX_NAME_LEN),
        _str(result.get("src_addr"), "src_addr"), float(confidence),
        _int(result.get("probes_sent", 0), "probes_sent", 0, MAX_COUNT),
        bool(result.get("complete")),
    )
    append = batch.tables["mda_links"].append
    if len(links) > MAX_LINK_INDEX + 1:
        raise MalformedResult("out_of_range", f"{len(links)} MDA links")
    for index, link in enumerate(links):
        if not isinstance(link, dict):
            raise MalformedResult("bad_value", "an MDA link is not an object")
        flows = link.get("flow_ids")
        if not isinstance(flows, list):
            raise MalformedResult("bad_value", f"MDA link {index} has no flow_ids list")
        append(envelope + (
            _int(link.get("ttl"), "ttl", 1, MAX_MDA_TTL), index,
            _str(link.get("from"), "link from"), _str(link.get("to"), "link to"),
            [_int(f, "flow id", 0, MAX_FLOW_ID) for f in flows],
        ))


_BY_TYPE = {"traceroute": _traceroute, "dns": _dns, "ping": _ping, "mda": _mda}


def normalize_into(
    result: Any, batch: RowBatch, *, source: str, payload: bytes | str | None = None
) -> str:
    """Append the rows of one decoded result to ``batch``; return its type.

    ``payload`` is the raw text as received; it goes into ``raw_results`` verbatim (when
    None, the result is re-serialised). Raises MalformedResult / UnsupportedResult and then
    leaves ``batch`` exactly as it was.
    """
    kind = result_type(result)
    mark = batch._mark()
    batch.notes = []
    try:
        msm, prb, ts, firmware, vp = _envelope(result)
        _BY_TYPE[kind](result, batch, (source, msm, prb, ts, vp, firmware))
        destination = _str(
            result.get("dst_name") or result.get("dst_addr") or result.get("addr"),
            "destination", MAX_NAME_LEN,
        )
        # bytes go into the String column as they are (no decoded copy: a 1 MB result
        # would otherwise be held twice)
        text: bytes | str = orjson.dumps(result) if payload is None else payload
        notes = batch.notes
        batch.tables["raw_results"].append(
            (source, msm, prb, ts, kind, destination, vp, firmware, text,
             [f"{field}: {why}" for field, why in notes] if notes else [])
        )
        for field, _ in notes:
            batch.nulled[field] = batch.nulled.get(field, 0) + 1
    except MalformedResult:
        batch._rollback(mark)
        raise
    except (TypeError, AttributeError, KeyError, ValueError, OverflowError) as exc:
        batch._rollback(mark)
        raise MalformedResult("bad_value", f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    table = RESULT_TABLE[kind]
    batch.spans.append((table, mark[table], len(batch.tables[table])))
    batch.results += 1
    batch.counts[kind] += 1
    return kind


def normalize(result: Any, *, source: str = "file") -> RowBatch:
    """Normalise one result into a fresh batch (convenience for tests and tools)."""
    batch = RowBatch()
    normalize_into(result, batch, source=source)
    return batch
