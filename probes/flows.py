"""The rootless UDP Paris prober: one socket per flow, probes sent in batches.

A *flow id* (Atlas ``paris_id``) fixes the UDP 5-tuple: source port
``source_port_base + flow_id``, destination port ``destination_port``. Every probe of one
flow carries the same addresses, ports and protocol, so a per-flow load balancer sends
them all the same way (Paris traceroute); a different flow id is a different 5-tuple and
may take another branch. Probes of one flow differ only in TTL and payload (a sequence
number and the grenswacht marker), which the ICMP error quotes back, so a late reply is
never taken for the answer to a later probe.

:meth:`UdpFlowProber.probe` sends one batch — at most one probe per flow in flight — and
waits for the answers together, so a silent hop costs one timeout per batch, not per probe.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from probes.errqueue import (
    IcmpError,
    network_namespace,
    open_flow_socket,
    read_errors,
    set_ttl,
    source_address_for,
)
from probes.safety import Pacer, payload_sequence, probe_payload
from schemas.errors import ProbeError

if TYPE_CHECKING:
    from probes.context import RunContext
    from probes.settings import TaskOptions
    from schemas.tasks import ProbeTask

DEFAULT_SOURCE_PORT_BASE = 33000
DEFAULT_DESTINATION_PORT = 33435
PORT_WAIT_S = 30.0
"""How long a prober waits for a flow's source port held by another running trace."""
_UNREACHABLE = {4: 3, 6: 1}  # ICMP / ICMPv6 "destination unreachable" type
_PORT_UNREACHABLE = {4: 3, 6: 4}
_UNREACHABLE_FLAGS = {
    4: {0: "N", 1: "H", 2: "P", 9: "A", 10: "A", 13: "A"},
    6: {0: "N", 1: "A", 3: "H", 5: "A", 6: "A"},
}


class FlowBusy(ProbeError):
    """A flow's source port is held by another socket."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one probe."""

    address: str
    rtt_ms: float
    icmp_type: int
    icmp_code: int
    reply_ttl: int | None
    size: int
    reached: bool
    error_flag: str | None


@dataclass(frozen=True, slots=True)
class Probe:
    flow_id: int
    ttl: int


@dataclass
class UdpFlowProber:
    """Probes one destination. Constructing it does no I/O; sockets open on first use and
    close in :meth:`close` (or at the end of a ``with`` block)."""

    destination: str
    af: int
    timeout_s: float = 1.0
    payload_size: int = 48
    source_port_base: int = DEFAULT_SOURCE_PORT_BASE
    destination_port: int = DEFAULT_DESTINATION_PORT
    netns: str | None = None
    pacer: Pacer | None = None
    probes_sent: int = 0
    _sockets: dict[int, socket.socket] = field(default_factory=dict, init=False)
    _sequence: int = field(default=0, init=False)

    @property
    def family(self) -> int:
        return socket.AF_INET if self.af == 4 else socket.AF_INET6

    def flow_ports(self, flow_id: int) -> tuple[int, int]:
        return self.source_port_base + flow_id, self.destination_port

    def source_address(self) -> str:
        """The local address the kernel chooses towards the destination."""
        try:
            with network_namespace(self.netns):
                return source_address_for(self.family, self.destination, self.destination_port)
        except OSError as exc:
            raise ProbeError(f"no route to {self.destination}: {exc}") from exc

    def _socket(self, flow_id: int, *, wait: bool = True) -> socket.socket:
        sock = self._sockets.get(flow_id)
        if sock is None:
            source_port, destination_port = self.flow_ports(flow_id)
            if not 0 < source_port < 65536:
                raise ProbeError(f"flow id {flow_id} gives source port {source_port}")
            deadline = time.monotonic() + (PORT_WAIT_S if wait else 0.0)
            while True:
                try:
                    with network_namespace(self.netns):
                        sock = open_flow_socket(self.family, source_port)
                    break
                except OSError as exc:
                    busy = exc.errno == errno.EADDRINUSE
                    if busy and time.monotonic() < deadline:
                        time.sleep(0.05)  # another trace uses this flow right now: wait
                        continue
                    raise (FlowBusy if busy else ProbeError)(
                        f"cannot open the UDP probe socket of flow {flow_id} "
                        f"(source port {source_port}): {exc}"
                    ) from exc
            self._sockets[flow_id] = sock
        return sock

    def claim(self, flow_id: int) -> bool:
        """Open flow ``flow_id``'s socket now; False (at once, no waiting) when its source
        port is taken by another socket. MDA skips such flows instead of waiting."""
        try:
            self._socket(flow_id, wait=False)
        except FlowBusy:
            return False
        return True

    def probe(self, probes: Sequence[Probe]) -> list[Reply | None]:
        """Send ``probes`` and return one reply (or None on timeout) per probe, in order.
        Probes of the same flow are sent in successive rounds."""
        results: list[Reply | None] = [None] * len(probes)
        pending = list(enumerate(probes))
        while pending:
            round_: list[tuple[int, Probe]] = []
            later: list[tuple[int, Probe]] = []
            seen: set[int] = set()
            for index, item in pending:
                (later if item.flow_id in seen else round_).append((index, item))
                seen.add(item.flow_id)
            for index, reply in zip(
                (i for i, _ in round_), self._round([p for _, p in round_]), strict=True
            ):
                results[index] = reply
            pending = later
        return results

    def _round(self, probes: Sequence[Probe]) -> list[Reply | None]:
        outstanding: dict[int, tuple[int, int, int]] = {}  # flow -> (index, sequence, sent_ns)
        replies: list[Reply | None] = [None] * len(probes)
        by_fd: dict[int, int] = {}
        for index, item in enumerate(probes):
            sock = self._socket(item.flow_id)
            read_errors(sock, self.family)  # drop stale errors, clear SO_ERROR
            set_ttl(sock, self.family, item.ttl)
            self._sequence += 1
            payload = probe_payload(self._sequence, self.payload_size)
            if self.pacer is not None:
                self.pacer.acquire()
            sent_ns = time.time_ns()
            try:
                sock.sendto(payload, (self.destination, self.destination_port))
            except OSError as exc:
                raise ProbeError(f"cannot send a probe to {self.destination}: {exc}") from exc
            self.probes_sent += 1
            outstanding[item.flow_id] = (index, self._sequence, sent_ns)
            by_fd[sock.fileno()] = item.flow_id
        poller = select.poll()
        for fd in by_fd:
            poller.register(fd, select.POLLERR)
        deadline = time.monotonic() + self.timeout_s
        while outstanding:
            remaining = deadline - time.monotonic()
            # past the deadline, one last non-blocking look: answers that arrived in time
            # but were not read yet (this process was not scheduled) still count
            events = poller.poll(max(remaining, 0.0) * 1000)
            if remaining <= 0 and not events:
                break
            for fd, _event in events:
                flow_id = by_fd[fd]
                for error in read_errors(self._sockets[flow_id], self.family):
                    expected = outstanding.get(flow_id)
                    if expected is None or not error.is_icmp:
                        continue
                    quoted = payload_sequence(error.quoted_payload)
                    if quoted is not None and quoted != expected[1]:
                        continue  # a late answer to an earlier probe of this flow
                    index, _sequence, sent_ns = expected
                    replies[index] = self._reply(error, sent_ns)
                    del outstanding[flow_id]
                    poller.unregister(fd)
        return replies

    def _reply(self, error: IcmpError, sent_ns: int) -> Reply:
        received_ns = error.received_ns or time.time_ns()
        reached = (
            error.icmp_type == _UNREACHABLE[self.af]
            and error.icmp_code == _PORT_UNREACHABLE[self.af]
        )
        flag = None
        if error.icmp_type == _UNREACHABLE[self.af] and not reached:
            flag = _UNREACHABLE_FLAGS[self.af].get(error.icmp_code, str(error.icmp_code))
        header = 20 if self.af == 4 else 40
        return Reply(
            address=error.offender,
            rtt_ms=round(max(received_ns - sent_ns, 0) / 1e6, 3),
            icmp_type=error.icmp_type,
            icmp_code=error.icmp_code,
            reply_ttl=error.reply_ttl,
            size=8 + header + 8 + len(error.quoted_payload),
            reached=reached,
            error_flag=flag,
        )

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def __enter__(self) -> UdpFlowProber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def target_of(task: ProbeTask, context: RunContext) -> tuple[str, str, int]:
    """(address, name, address family) of a task's target, checked against the policy."""
    address, name = context.resolve(task.target, task.af)
    return address, name, 6 if ":" in address else 4


def prober_for(
    options: TaskOptions, context: RunContext, address: str, af: int
) -> UdpFlowProber:
    """The UDP flow prober for a task's (already limited) options."""
    return UdpFlowProber(
        address,
        af,
        timeout_s=options.timeout_s,
        payload_size=options.size,
        netns=context.netns,
        pacer=context.pacer,
    )
