"""Forward paths and the RTT observations they carry, pure: rows in, paths out.

:func:`paths_from_rows` / :func:`paths_from_mda_rows` turn ``traceroute_hops`` /
``mda_links``-shaped dicts (as ``schemas.normalize`` produces and ClickHouse returns them,
per reply or aggregated per hop and address) into forward paths;
:func:`path_observations` and :func:`ping_observations` give the RTT observations a
window's regions are built from (constraint-based geolocation, ``constraints.Regions``).
The verdict stages are in ``window.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from consumers.enrich.constraints import Observation, traceroute_observations
from consumers.enrich.geo import is_public
from consumers.enrich.vantage import Vantage
from schemas.normalize import epoch_seconds

TRACEROUTE = "traceroute"
MDA = "mda"


class Resolver(Protocol):
    """Where a vantage point is (``consumers.enrich.vantage.VantageRegistry``)."""

    def resolve(self, probe_id: int, vantage_point: str = "",
                public_address: str = "") -> Vantage | None: ...


@dataclass(slots=True)
class TracedPath:
    """One traceroute (or MDA) result: who measured, to where, and the minimum RTT per reply
    address (the largest too, and the unanswered probes per hop: the end-to-end constraint
    needs them). An MDA result is one path over all its branches (no RTTs)."""

    source: str
    measurement_id: int
    probe_id: int
    timestamp: int  # seconds since the epoch
    vantage_point: str
    destination_address: str
    destination_name: str
    probe_public_address: str
    hops: dict[tuple[int, str], float | None] = field(default_factory=dict)
    kind: str = TRACEROUTE
    paris_id: int | None = None
    slowest: dict[tuple[int, str], float] = field(default_factory=dict)  # largest RTT
    timeouts: dict[int, int] = field(default_factory=dict)  # unanswered probes per hop

    @property
    def key(self) -> tuple[str, int, int, int, str]:
        return (self.source, self.measurement_id, self.probe_id, self.timestamp,
                self.destination_address)

    @property
    def address_family(self) -> int:
        return 6 if ":" in self.destination_address else 4

    def add(self, hop: int, address: str, rtt_ms: float | None,
            slowest_ms: float | None = None) -> None:
        if not address:
            return
        key = (hop, address)
        known = self.hops.get(key)
        if key not in self.hops or (rtt_ms is not None and (known is None or rtt_ms < known)):
            self.hops[key] = rtt_ms
        largest = slowest_ms if slowest_ms is not None else rtt_ms
        if largest is not None and largest > self.slowest.get(key, -1.0):
            self.slowest[key] = largest


_epoch = epoch_seconds  # rows from SQL (seconds), ClickHouse (datetime) or normalize (ms)


def paths_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[TracedPath]:
    """Group traceroute_hops rows into forward paths (min and max RTT per hop and address,
    unanswered probes per hop). Rows may be per reply, aggregated (``rtt_max_ms``,
    ``timeouts``) or one per result (``replies``: ``consumers.graph.window.read_path_rows``)."""
    paths: dict[tuple[Any, ...], TracedPath] = {}
    grouped: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if not row["destination_address"]:
            continue  # name resolution failed: no path was measured
        key = (row["source"], row["measurement_id"], row["probe_id"], _epoch(row["timestamp"]),
               row["destination_address"])
        if "replies" in row:  # one row per result (``read_path_rows``)
            grouped.setdefault(key, []).append(row)
            continue
        path = paths.get(key)
        if path is None:
            path = paths[key] = _new_path(key, row)
        hop = int(row["hop"])
        lost = int(row.get("timeouts") or 0) + bool(row.get("is_timeout"))
        if lost:
            path.timeouts[hop] = path.timeouts.get(hop, 0) + lost
        if not row.get("is_timeout"):
            path.add(hop, str(row.get("reply_address") or ""), row.get("rtt_ms"),
                     row.get("rtt_max_ms"))
    _from_result_rows(paths, grouped)
    return list(paths.values())


def _new_path(key: tuple[Any, ...], row: Mapping[str, Any]) -> TracedPath:
    paris = row.get("paris_id")
    return TracedPath(
        str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]), key[3],
        str(row.get("vantage_point") or ""), str(row["destination_address"]),
        str(row.get("destination_name") or ""), str(row.get("probe_public_address") or ""),
        paris_id=None if paris is None else int(paris))


def _first_reply(row: Mapping[str, Any]) -> tuple[int, int]:
    replies = row["replies"]
    return (int(replies[0][0]), int(replies[0][1])) if replies else (1 << 16, 0)


def _from_result_rows(paths: dict[tuple[Any, ...], TracedPath],
                      grouped: Mapping[tuple[Any, ...], Sequence[Mapping[str, Any]]]) -> None:
    """Paths from rows of one result each (``replies``: ``(hop, reply_index, address,
    is_timeout, rtt_ms)`` in hop and reply order), as the rows of one reply each would
    give them; results of one path key (two flows in one second) merge in reply order."""
    for key, group in grouped.items():
        path = paths.get(key)
        if path is None:  # made from the row holding the first reply, as per reply
            path = paths[key] = _new_path(key, min(group, key=_first_reply))
        replies = group[0]["replies"] if len(group) == 1 else sorted(
            (reply for row in group for reply in row["replies"]), key=lambda r: (r[0], r[1]))
        timeouts, add = path.timeouts, path.add
        for hop, _index, address, is_timeout, rtt in replies:
            if is_timeout:
                timeouts[hop] = timeouts.get(hop, 0) + 1
            else:
                add(hop, address, rtt)


def paths_from_mda_rows(rows: Iterable[Mapping[str, Any]]) -> list[TracedPath]:
    """One path per MDA result, holding every interface of every branch (``mda_links``)."""
    paths: dict[tuple[Any, ...], TracedPath] = {}
    for row in rows:
        if not row["destination_address"]:
            continue
        key = (row["source"], row["measurement_id"], row["probe_id"], _epoch(row["timestamp"]),
               row["destination_address"])
        path = paths.get(key)
        if path is None:
            path = paths[key] = TracedPath(
                str(row["source"]), int(row["measurement_id"]), int(row["probe_id"]),
                _epoch(row["timestamp"]), str(row.get("vantage_point") or ""),
                str(row["destination_address"]), str(row.get("destination_name") or ""), "",
                kind=MDA,
            )
        ttl = int(row["ttl"])
        path.add(ttl, str(row.get("near_address") or ""), None)
        path.add(ttl + 1, str(row.get("far_address") or ""), None)
    return list(paths.values())


def path_observations(path: TracedPath, vantage: Vantage | None) -> list[Observation]:
    """The RTT observations one traceroute contributes to its window's regions."""
    return traceroute_observations(vantage, path.hops,
                                   f"traceroute {path.measurement_id}/{path.probe_id}")


def ping_observations(rows: Iterable[Mapping[str, Any]],
                      registry: Resolver) -> list[Observation]:
    """``ping_results``-shaped rows (probe_id, vantage_point, source_address,
    destination_address, rtt_min_ms or smallest_rtt_ms, measurement_id) -> observations of
    the destinations (confirmation pings among them, issue 16 item 5)."""
    out = []
    for row in rows:
        rtt = row.get("smallest_rtt_ms", row.get("rtt_min_ms"))
        address = str(row.get("destination_address") or "")
        if rtt is None or not address or not is_public(address):
            continue
        source = str(row.get("source_address") or "")
        vantage = registry.resolve(int(row["probe_id"]), str(row.get("vantage_point") or ""),
                                   source if is_public(source) else "")
        if vantage is not None:
            out.append(Observation(address, vantage, float(rtt),
                                   f"ping {row.get('measurement_id', '?')}/{row['probe_id']}"))
    return out
