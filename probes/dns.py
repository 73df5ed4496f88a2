"""DNS runner (dnspython): A and AAAA with the CNAME chain, as RIPE Atlas DNS results.

One result per task. With one query (one type, one resolver) the result carries ``qbuf``
and ``result`` (``rt``, ``size``, ``abuf``, ``ID``, section counts) at the top level; with
several it carries a ``resultset``, one entry per (query type, resolver), types outer
(``subid``/``submax`` as Atlas does; each entry has its own ``qbuf``). Keeping A and AAAA
in one result keeps one natural key (msm_id, prb_id, timestamp) per task; ``gw_query``
names the query name and types. A
resolver that does not answer gives ``{"error": {"timeout": ms}}`` (sagan reports it as an
error, like an Atlas timeout). ``abuf`` is the answer exactly as received, base64, so the
CNAME chain and addresses decode with sagan (``response.abuf.answers``).
"""

from __future__ import annotations

import base64
import socket
import struct
import time
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from probes.context import RunContext, now
from probes.errqueue import network_namespace
from probes.settings import task_options
from schemas.errors import InvalidTaskOptions, ProbeError
from schemas.tasks import ProbeTask

DNS_PORT = 53


def system_resolvers() -> list[str]:
    """The resolvers of ``/etc/resolv.conf`` (empty when it has none)."""
    try:
        return [str(n) for n in dns.resolver.Resolver(configure=True).nameservers]
    except dns.resolver.NoResolverConfiguration:
        return []


def _exchange(
    query_wire: bytes, resolver: str, protocol: str, timeout_s: float, netns: str | None,
    port: int,
) -> tuple[bytes, float, str]:
    """Send one query; return (answer wire, response time ms, source address)."""
    family = socket.AF_INET6 if ":" in resolver else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with network_namespace(netns):
        sock = socket.socket(family, kind)
    with sock:
        sock.settimeout(timeout_s)
        started = time.perf_counter()
        sock.connect((resolver, port))
        source = str(sock.getsockname()[0])
        if protocol == "tcp":
            sock.sendall(struct.pack(">H", len(query_wire)) + query_wire)
            length = struct.unpack(">H", _read_exactly(sock, 2))[0]
            wire = _read_exactly(sock, length)
        else:
            sock.send(query_wire)
            wire = sock.recv(65535)
        elapsed = (time.perf_counter() - started) * 1000
    return wire, round(elapsed, 3), source


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-answer")
        data += chunk
    return data


def query_one(
    name: str, query_type: str, resolver: str, *, protocol: str, timeout_s: float,
    netns: str | None = None, port: int = DNS_PORT,
) -> dict[str, Any]:
    """One Atlas response entry (``result`` or ``error``, ``qbuf``, ``src_addr``)."""
    query = dns.message.make_query(name, dns.rdatatype.from_text(query_type))
    query_wire = query.to_wire()
    entry: dict[str, Any] = {
        "af": 6 if ":" in resolver else 4,
        "dst_addr": resolver,
        "proto": protocol.upper(),
        "qbuf": base64.b64encode(query_wire).decode(),
        "time": int(now()),
    }
    try:
        wire, elapsed, source = _exchange(query_wire, resolver, protocol, timeout_s, netns, port)
    except TimeoutError:
        entry["error"] = {"timeout": int(timeout_s * 1000)}
        return entry
    except OSError as exc:
        entry["error"] = {"socket": str(exc)}
        return entry
    entry["src_addr"] = source
    try:
        answer = dns.message.from_wire(wire)
    except dns.exception.DNSException as exc:
        entry["error"] = {"socket": f"undecodable answer: {exc}"}
        return entry
    if answer.id != query.id:
        entry["error"] = {"socket": f"answer id {answer.id} != query id {query.id}"}
        return entry
    entry["result"] = {
        "rt": elapsed,
        "size": len(wire),
        "abuf": base64.b64encode(wire).decode(),
        "ID": answer.id,
        "QDCOUNT": len(answer.question),
        "ANCOUNT": sum(len(r) for r in answer.answer),
        "NSCOUNT": sum(len(r) for r in answer.authority),
        "ARCOUNT": sum(len(r) for r in answer.additional) + (1 if answer.edns >= 0 else 0),
    }
    return entry


def run_dns(task: ProbeTask, context: RunContext) -> list[dict[str, Any]]:
    """A :data:`probes.runners.RUNNERS` entry: one Atlas ``dns`` result."""
    options = task_options(task, context.settings)
    resolvers = list(options.resolvers) or system_resolvers()
    if not resolvers:
        raise ProbeError("no DNS resolver configured and none in /etc/resolv.conf")
    for resolver in resolvers:
        context.policy.check(resolver)
    protocol = task.protocol if task.protocol in ("udp", "tcp") else "udp"
    timeout_s = options.timeout_s
    port = options.port or DNS_PORT
    query_types = list(options.query_types)
    try:
        for query_type in query_types:
            dns.rdatatype.from_text(query_type)
        dns.name.from_text(task.target)
    except dns.exception.DNSException as exc:
        raise InvalidTaskOptions(f"cannot ask {task.target!r} {query_types}: {exc}") from exc
    started = now()
    entries = [
        query_one(task.target, query_type, resolver, protocol=protocol, timeout_s=timeout_s,
                  netns=context.netns, port=port)
        for query_type in query_types
        for resolver in resolvers
    ]
    first = entries[0]
    result = context.result_head(
        "dns",
        af=first["af"],
        destination_address=first["dst_addr"],
        destination_name=task.target,
        source_address=first.get("src_addr", ""),
        protocol=protocol,
        msm_id=task.msm_id,
        started=started,
    )
    result["gw_query"] = {"name": task.target, "types": query_types}
    if len(entries) == 1:
        for key in ("qbuf", "result", "error"):
            if key in first:
                result[key] = first[key]
    else:
        for subid, entry in enumerate(entries, start=1):
            entry.update({"subid": subid, "submax": len(entries), "lts": -1})
        result["resultset"] = entries
    return [result]
