"""Rootless probing: UDP sockets that read ICMP errors from the socket error queue.

Linux queues every ICMP error that matches a UDP socket on that socket's *error queue*
when ``IP_RECVERR`` (IPv4) or ``IPV6_RECVERR`` (IPv6) is set. ``recvmsg(MSG_ERRQUEUE)``
then returns the quoted payload of the probe that caused the error and a control message
holding ``struct sock_extended_err``::

    struct sock_extended_err {
        __u32 ee_errno;   __u8 ee_origin;  __u8 ee_type;  __u8 ee_code;  __u8 ee_pad;
        __u32 ee_info;    __u32 ee_data;
    };  /* followed by the offender's sockaddr (SO_EE_OFFENDER) */

``ee_origin`` says whether ICMP (2) or ICMPv6 (3) produced it, ``ee_type``/``ee_code`` are
the ICMP type and code, and the offender address is the router or host that answered.
``IP_RECVTTL``/``IPV6_RECVHOPLIMIT`` add the reply's TTL and ``SO_TIMESTAMPNS`` the
kernel's receive time. No raw socket, no root, no capability is needed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from schemas.errors import ProbeError

SOL_IP = 0
SOL_IPV6 = 41
IP_RECVERR = 11
IP_RECVTTL = 12
IPV6_RECVERR = 25
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
SO_TIMESTAMPNS = 35
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
CLONE_NEWNET = 0x40000000

_EXTENDED_ERR = struct.Struct("=IBBBBII")
_TIMESPEC = struct.Struct("=qq")
_INT = struct.Struct("=i")


@dataclass(frozen=True, slots=True)
class IcmpError:
    """One ICMP error read from a socket's error queue."""

    offender: str
    icmp_type: int
    icmp_code: int
    origin: int
    error_number: int
    reply_ttl: int | None
    received_ns: int | None
    quoted_payload: bytes

    @property
    def is_icmp(self) -> bool:
        return self.origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6)


def _offender(data: bytes, family: int) -> str:
    if family == socket.AF_INET and len(data) >= 8:
        return socket.inet_ntop(socket.AF_INET, data[4:8])
    if family == socket.AF_INET6 and len(data) >= 24:
        return socket.inet_ntop(socket.AF_INET6, data[8:24])
    return ""


def parse_error_message(
    quoted: bytes, ancillary: list[tuple[int, int, bytes]], family: int
) -> IcmpError | None:
    """Build an :class:`IcmpError` from ``recvmsg(MSG_ERRQUEUE)`` output (None if the
    control messages hold no extended error)."""
    extended: tuple[int, ...] | None = None
    offender_raw = b""
    reply_ttl: int | None = None
    received_ns: int | None = None
    for level, kind, data in ancillary:
        if (level, kind) in ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)):
            extended = _EXTENDED_ERR.unpack_from(data)
            offender_raw = data[_EXTENDED_ERR.size :]
        elif (level, kind) in ((SOL_IP, socket.IP_TTL), (SOL_IPV6, IPV6_HOPLIMIT)):
            reply_ttl = _INT.unpack_from(data)[0]
        elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            received_ns = seconds * 1_000_000_000 + nanoseconds
    if extended is None:
        return None
    error_number, origin, icmp_type, icmp_code = extended[:4]
    offender_family = struct.unpack_from("=H", offender_raw)[0] if len(offender_raw) >= 2 else 0
    return IcmpError(
        offender=_offender(offender_raw, offender_family or family),
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        origin=origin,
        error_number=error_number,
        reply_ttl=reply_ttl,
        received_ns=received_ns,
        quoted_payload=quoted,
    )


def open_flow_socket(family: int, source_port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``source_port`` with the error queue, reply TTL
    and kernel timestamps switched on.

    The socket is deliberately *not* connected: ``connect()`` gives a socket a random
    transmit hash that the kernel copies into every packet, and Linux routers (ECMP hash
    policy 1) then use that hash instead of hashing the 5-tuple, so two sockets with the
    same ports could take different branches. Unconnected sockets carry no hash, so the
    path depends on the 5-tuple only (true Paris behaviour on Linux hosts as well).
    """
    sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if family == socket.AF_INET:
            sock.setsockopt(SOL_IP, IP_RECVERR, 1)
            sock.setsockopt(SOL_IP, IP_RECVTTL, 1)
            sock.bind(("0.0.0.0", source_port))  # noqa: S104 - the kernel picks the route
        else:
            sock.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
            sock.setsockopt(SOL_IPV6, IPV6_RECVHOPLIMIT, 1)
            sock.bind(("::", source_port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def source_address_for(family: int, destination: str, port: int) -> str:
    """The local address the kernel would use towards ``destination`` (no packet sent)."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((destination, port))
        return str(sock.getsockname()[0])


def set_ttl(sock: socket.socket, family: int, ttl: int) -> None:
    if family == socket.AF_INET:
        sock.setsockopt(SOL_IP, socket.IP_TTL, ttl)
    else:
        sock.setsockopt(SOL_IPV6, socket.IPV6_UNICAST_HOPS, ttl)


def read_errors(sock: socket.socket, family: int) -> list[IcmpError]:
    """Drain the socket's error queue (non-blocking). Draining also clears ``SO_ERROR``."""
    out: list[IcmpError] = []
    while True:
        try:
            quoted, ancillary, _flags, _address = sock.recvmsg(2048, 1024, MSG_ERRQUEUE)
        except BlockingIOError:
            return out
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return out
            raise
        parsed = parse_error_message(quoted, ancillary, family)
        if parsed is not None:
            out.append(parsed)


_libc = ctypes.CDLL(None, use_errno=True)
_NETNS_LOCK = threading.Lock()


@contextlib.contextmanager
def network_namespace(name: str | None) -> Iterator[None]:
    """Run the body in the named network namespace (``/run/netns/NAME``), for the calling
    thread only; sockets created inside stay in that namespace. ``None`` does nothing.
    Entering a namespace needs ``CAP_SYS_ADMIN``; the probes themselves do not."""
    if not name:
        yield
        return
    path = name if name.startswith("/") else f"/run/netns/{name}"
    try:
        target = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ProbeError(f"network namespace {name!r} not found: {exc}") from exc
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        with _NETNS_LOCK:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise ProbeError(f"cannot enter network namespace {name!r}: {os.strerror(code)}")
        try:
            yield
        finally:
            if _libc.setns(original, CLONE_NEWNET) != 0:  # pragma: no cover - kernel refused
                raise ProbeError("cannot return to the original network namespace")
    finally:
        os.close(target)
        os.close(original)
