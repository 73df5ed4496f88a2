"""Identity of self-hosted vantage points inside RIPE Atlas-format results.

RIPE Atlas probe ids (hardware, anchors and software probes) are below 2,000,000 today.
grenswacht's own vantage points use ``prb_id`` values in
``[SELF_HOSTED_PROBE_ID_MIN, SELF_HOSTED_PROBE_ID_MAX]`` so both sources can sit in one
table without colliding, and every self-hosted result carries ``gw_vp`` (the vantage point
name). ``fw`` is :data:`RESULT_FORMAT_FIRMWARE`: the Atlas firmware whose result format the
agent writes (sagan picks its parsing rules by ``fw``); it is not a real Atlas firmware.

:class:`AtlasProbeMetadata` is the message of :data:`schemas.topics.VANTAGE_POINTS`: one
RIPE Atlas probe object as the probe API v2 returned it (raw stays raw: the consumer turns
it into a position), with the time it was fetched.
"""

from __future__ import annotations

import zlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SELF_HOSTED_PROBE_ID_MIN = 10_000_000
SELF_HOSTED_PROBE_ID_MAX = 19_999_999
RESULT_FORMAT_FIRMWARE = 5080
VANTAGE_POINT_FIELD = "gw_vp"


def is_self_hosted(probe_id: int) -> bool:
    """True when ``probe_id`` lies in the self-hosted range (not a RIPE Atlas probe)."""
    return SELF_HOSTED_PROBE_ID_MIN <= probe_id <= SELF_HOSTED_PROBE_ID_MAX


def default_probe_id(vantage_point: str) -> int:
    """A stable probe id derived from the vantage point name (used when none is set)."""
    span = SELF_HOSTED_PROBE_ID_MAX - SELF_HOSTED_PROBE_ID_MIN + 1
    return SELF_HOSTED_PROBE_ID_MIN + zlib.crc32(vantage_point.encode()) % span


def is_atlas_probe(probe_id: int) -> bool:
    """True for an id RIPE Atlas could have given (not self-hosted, not 0)."""
    return 0 < probe_id < SELF_HOSTED_PROBE_ID_MIN


class AtlasProbeMetadata(BaseModel):
    """One RIPE Atlas probe's metadata, fetched from ``/api/v2/probes/?id__in=...``.

    ``found = False`` says the API knows no such probe (``probe`` is then empty); the
    consumer stores nothing for it, the scheduler asks again after ``refresh_s``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    probe_id: int = Field(ge=1, lt=SELF_HOSTED_PROBE_ID_MIN)
    fetched_at: float = Field(ge=0, description="Unix time of the API response.")
    found: bool = True
    probe: dict[str, Any] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AtlasProbeMetadata:
        return cls.model_validate_json(data)
