"""What every runner gets: the vantage point's identity, its safety limits, and the common
head of a RIPE Atlas-format result."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from probes.errqueue import network_namespace
from probes.safety import Pacer, TargetPolicy
from probes.settings import ProbeSettings
from schemas.errors import ProbeError
from schemas.vantage import RESULT_FORMAT_FIRMWARE, VANTAGE_POINT_FIELD, default_probe_id

MSM_NAMES = {"traceroute": "Traceroute", "dns": "Tdig", "mda": "MDA"}


@dataclass
class RunContext:
    """Built once per agent (or per CLI call); constructing it does no I/O."""

    settings: ProbeSettings
    policy: TargetPolicy = field(default_factory=TargetPolicy)
    pacer: Pacer | None = None

    @classmethod
    def from_settings(
        cls, settings: ProbeSettings, extra_allow: tuple[str, ...] = ()
    ) -> RunContext:
        policy = TargetPolicy.from_strings(settings.allow, settings.deny).with_allowed(
            extra_allow
        )
        return cls(settings, policy, Pacer(settings.probes_per_second))

    @property
    def probe_id(self) -> int:
        return self.settings.probe_id or default_probe_id(self.settings.name)

    @property
    def netns(self) -> str | None:
        return self.settings.netns or None

    def resolve(self, target: str, af: int) -> tuple[str, str]:
        """(address, name) for a target given as address or hostname, checked against the
        target policy."""
        try:
            address = str(ipaddress.ip_address(target))
        except ValueError:
            family = socket.AF_INET if af == 4 else socket.AF_INET6
            try:
                with network_namespace(self.netns):
                    infos = socket.getaddrinfo(target, None, family, socket.SOCK_DGRAM)
            except socket.gaierror as exc:
                raise ProbeError(f"cannot resolve {target!r} (IPv{af}): {exc}") from exc
            address = str(infos[0][4][0])
        self.policy.check(address)
        return address, target

    def result_head(
        self,
        kind: str,
        *,
        af: int,
        destination_address: str,
        destination_name: str,
        source_address: str,
        protocol: str,
        msm_id: int,
        started: float,
    ) -> dict[str, Any]:
        """The keys every Atlas-format result of this vantage point starts with."""
        return {
            "fw": RESULT_FORMAT_FIRMWARE,
            "lts": -1,
            "af": af,
            "dst_addr": destination_address,
            "dst_name": destination_name,
            "src_addr": source_address,
            "from": self.settings.public_address or source_address,
            "msm_id": msm_id,
            "msm_name": MSM_NAMES[kind],
            "prb_id": self.probe_id,
            "proto": protocol.upper(),
            "timestamp": int(started),
            "type": kind,
            VANTAGE_POINT_FIELD: self.settings.name,
            "gw_vp_location": self.settings.location(),
        }


def now() -> float:
    return time.time()
