"""A small authoritative DNS server (dnspython) for the tests: it answers every A/AAAA
query for a name in its zone with the whole CNAME chain plus the final addresses, as a
recursive resolver would, over UDP and TCP, on sockets opened in a network namespace."""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from probes.errqueue import network_namespace


@dataclass
class ChainServer:
    chain: list[str]  # e.g. ["www.gemeente.test.", "app.saas.test.", "edge.cdn.test."]
    addresses: dict[str, list[str]]  # "A"/"AAAA" -> addresses of the last name
    listen: list[str]
    netns: str | None = None
    port: int = 53
    queries: list[tuple[str, str]] = field(default_factory=list)
    _sockets: list[socket.socket] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        qname, qtype = question.name, dns.rdatatype.to_text(question.rdtype)
        self.queries.append((qname.to_text(), qtype))
        names = [dns.name.from_text(n) for n in self.chain]
        if qname in names:
            start = names.index(qname)
            for current, target in itertools.pairwise(names[start:]):
                response.answer.append(dns.rrset.from_text(current, 300, "IN", "CNAME",
                                                           target.to_text()))
            if qtype in self.addresses:
                response.answer.append(dns.rrset.from_text_list(
                    names[-1], 60, "IN", qtype, self.addresses[qtype]))
        else:
            response.set_rcode(3)  # NXDOMAIN
        response.flags |= dns.flags.AA | dns.flags.RA
        return response.to_wire()

    def start(self) -> ChainServer:
        for address in self.listen:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with network_namespace(self.netns):
                udp = socket.socket(family, socket.SOCK_DGRAM)
                tcp = socket.socket(family, socket.SOCK_STREAM)
            udp.bind((address, self.port))
            if self.port == 0:  # any free port; TCP then takes the same number
                self.port = udp.getsockname()[1]
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, self.port))
            tcp.listen(8)
            for sock, loop in ((udp, self._serve_udp), (tcp, self._serve_tcp)):
                sock.settimeout(0.1)
                self._sockets.append(sock)
                thread = threading.Thread(target=loop, args=(sock,), daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def _serve_udp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            sock.sendto(self.answer(wire), peer)

    def _serve_tcp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _peer = sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                length = struct.unpack(">H", conn.recv(2))[0]
                wire = b""
                while len(wire) < length:
                    wire += conn.recv(length - len(wire))
                out = self.answer(wire)
                conn.sendall(struct.pack(">H", len(out)) + out)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()



