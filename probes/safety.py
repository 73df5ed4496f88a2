"""What keeps a vantage point a good network citizen: the target policy, the probe-rate cap,
the per-target rate limit and the marker carried in every probe payload."""

from __future__ import annotations

import ipaddress
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.errors import ProbeError, TargetNotAllowed

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PAYLOAD_MAGIC = b"GW"
PAYLOAD_MARKER = b" grenswacht probe "
_SEQUENCE = struct.Struct(">2sI")
MIN_PAYLOAD_SIZE = _SEQUENCE.size + len(b" grenswacht")


def probe_payload(sequence: int, size: int) -> bytes:
    """``size`` bytes: magic, a 32-bit sequence number, then the grenswacht marker text."""
    if size < MIN_PAYLOAD_SIZE:
        raise ProbeError(f"probe payload size {size} is below the minimum {MIN_PAYLOAD_SIZE}")
    head = _SEQUENCE.pack(PAYLOAD_MAGIC, sequence & 0xFFFFFFFF)
    body = (PAYLOAD_MARKER * (size // len(PAYLOAD_MARKER) + 1))[: size - len(head)]
    return head + body


def payload_sequence(quoted: bytes) -> int | None:
    """The sequence number of a quoted grenswacht payload (None if not quoted/ours)."""
    if len(quoted) < _SEQUENCE.size or not quoted.startswith(PAYLOAD_MAGIC):
        return None
    return int(_SEQUENCE.unpack_from(quoted)[1])


_ALSO_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in ("100.64.0.0/10", "fec0::/10")  # carrier-grade NAT; IPv6 site-local
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _default_denied(address: IPAddress) -> bool:
    return bool(
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or any(address in net for net in _ALSO_REFUSED if net.version == address.version)
    )


def wrapped_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, NAT64 well-known prefix,
    6to4 (2002::/16), Teredo (2001::/32: the server and the de-obfuscated client)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return ()
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address in _NAT64:
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    return ()


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Allow/deny list of destination networks.

    Order: an explicit ``deny`` entry refuses; an explicit ``allow`` entry permits; anything
    else is permitted unless it is loopback, private, link-local, reserved, multicast,
    unspecified, carrier-grade NAT (100.64.0.0/10) or IPv6 site-local (fec0::/10) — refused
    by default, so a lab network must be allowed explicitly.

    An IPv6 address that carries an IPv4 address (:func:`wrapped_ipv4`: IPv4-mapped,
    NAT64 ``64:ff9b::/96``, 6to4, Teredo) is refused when the IPv4 address would be,
    whatever the IPv6 address itself: ``2002:7f00:1::1`` is 127.0.0.1 in disguise. Allowing
    the IPv6 network does not allow the IPv4 range inside it; allow that range too.
    IPv4-mapped and NAT64 addresses are otherwise judged by their IPv4 address alone (they
    *are* IPv4 destinations).
    """

    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_strings(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> TargetPolicy:
        try:
            return cls(
                tuple(ipaddress.ip_network(n, strict=False) for n in allow),
                tuple(ipaddress.ip_network(n, strict=False) for n in deny),
            )
        except ValueError as exc:
            raise ProbeError(f"invalid network in allow/deny list: {exc}") from exc

    def with_allowed(self, networks: Iterable[str]) -> TargetPolicy:
        extra = TargetPolicy.from_strings(networks)
        return TargetPolicy(self.allow + extra.allow, self.deny)

    @staticmethod
    def _within(networks: tuple[IPNetwork, ...], ip: IPAddress) -> bool:
        return any(ip in net for net in networks if net.version == ip.version)

    def check(self, address: str) -> None:
        """Raise :class:`TargetNotAllowed` unless probing ``address`` is permitted."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as exc:
            raise TargetNotAllowed(f"{address!r} is not an IP address") from exc
        inner = wrapped_ipv4(ip)
        for candidate in (ip, *inner):
            if self._within(self.deny, candidate):
                raise TargetNotAllowed(f"{address} is in the deny-list")
        for candidate in inner:
            if not self._within(self.allow, candidate) and _default_denied(candidate):
                raise TargetNotAllowed(
                    f"{address} wraps {candidate}, which is loopback/private/reserved/"
                    "carrier-grade NAT; allow that IPv4 range explicitly"
                )
        if self._within(self.allow, ip):
            return
        if inner and (ip in _NAT64 or ip in _IPV4_MAPPED):
            return  # an IPv4 destination, judged above by its IPv4 address
        if _default_denied(ip):
            raise TargetNotAllowed(
                f"{address} is loopback/private/link-local/reserved/carrier-grade NAT/"
                "site-local; allow it explicitly"
            )


@dataclass
class Pacer:
    """Token bucket capping probe packets per second across all runners of one agent.
    ``rate <= 0`` means no cap."""

    rate: float
    burst: float = 10.0
    _tokens: float = field(default=0.0, init=False)
    _last: float = field(default_factory=time.monotonic, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._tokens = self.burst

    def acquire(self, count: int = 1) -> None:
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= count or (count > self.burst and self._tokens >= self.burst):
                    self._tokens -= count
                    return
                wait = (min(count, self.burst) - self._tokens) / self.rate
            time.sleep(wait)


@dataclass
class TargetRateLimiter:
    """At most one measurement start per ``interval_s`` per target (blocking)."""

    interval_s: float
    _next: dict[str, float] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def wait(self, target: str) -> None:
        if self.interval_s <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(target, now))
            self._next[target] = start + self.interval_s
        if start > now:
            time.sleep(start - now)
