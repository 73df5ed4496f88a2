"""Confirmation requests: the analysis asks the scheduler to ping one hop address from RIPE
Atlas probes near the location a geo database claims (the US) and near the alternative
(in Europe), because physics allows the claim but does not prove it.

Published on :data:`schemas.topics.CONFIRM_REQUESTS`, keyed by the address, value the JSON
of :class:`ConfirmationRequest`. The answers come back as ordinary ping results on the
results topic (``ping_results``): a probe near the claimed US location answering in < 5 ms
proves the address is in the US; a probe in Europe answering in 3 ms refutes it.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ConfirmationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(description="The hop address to ping.")
    claimed_country: str = Field("US", pattern=r"^[A-Z]{2}$")
    claimed_latitude: float | None = Field(None, ge=-90, le=90)
    claimed_longitude: float | None = Field(None, ge=-180, le=180)
    claim_source: str = Field("", description="Geo source and dataset version of the claim.")
    alternative_country: str = Field("", pattern=r"^([A-Z]{2})?$")
    alternative_latitude: float | None = Field(None, ge=-90, le=90)
    alternative_longitude: float | None = Field(None, ge=-180, le=180)
    vantage_key: str = Field("", description="The vantage point that saw the address.")
    probe_id: int = Field(0, ge=0, description="Its probe id (0 when unknown).")
    rtt_ms: float | None = Field(None, ge=0, description="The smallest RTT it measured.")
    evidence: str = Field("", max_length=500, description="Where the claim is stored.")
    requested_at: float = Field(0.0, ge=0, description="Unix time of the request.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return str(ipaddress.ip_address(value.strip()))

    @property
    def address_family(self) -> int:
        return ipaddress.ip_address(self.address).version

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ConfirmationRequest:
        return cls.model_validate_json(data)
