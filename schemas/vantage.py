"""Identity of self-hosted vantage points inside RIPE Atlas-format results.

RIPE Atlas probe ids (hardware, anchors and software probes) are below 2,000,000 today.
grenswacht's own vantage points use ``prb_id`` values in
``[SELF_HOSTED_PROBE_ID_MIN, SELF_HOSTED_PROBE_ID_MAX]`` so both sources can sit in one
table without colliding, and every self-hosted result carries ``gw_vp`` (the vantage point
name). ``fw`` is :data:`RESULT_FORMAT_FIRMWARE`: the Atlas firmware whose result format the
agent writes (sagan picks its parsing rules by ``fw``); it is not a real Atlas firmware.
"""

from __future__ import annotations

import zlib

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
