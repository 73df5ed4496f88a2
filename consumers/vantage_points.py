"""RIPE Atlas probe metadata -> ``vantage_points`` (with the fetch date) -> the registry.

:class:`VantagePointConsumer` reads :data:`schemas.topics.VANTAGE_POINTS` (published by the
scheduler, :mod:`scheduler.probe_metadata`) in a consumer group of its own, turns each probe
object into a position with :func:`consumers.enrich.vantage.atlas_probes_from_api` (the one
parser of probe API objects) and inserts the rows with ``computed_at = fetched_at =`` the
time the API answered, then commits. A message that is not valid metadata becomes a dead
letter with the reason; a probe without coordinates (or unknown to the API) stores nothing.
Re-inserting the same message is harmless (ReplacingMergeTree on ``vantage_key``, version
``computed_at``; the dedup token hashes the content).

:func:`refresh_registry` loads the stored, fetched positions into a
:class:`~consumers.enrich.vantage.VantageRegistry`; the analysis calls it before each
window, so positions fetched while it runs are used from the next window on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from consumers.enrich.physics import vantage_us_distance_km
from consumers.enrich.vantage import VantageRegistry, atlas_probes_from_api
from consumers.ingest import ResultSink
from consumers.storage import Storage
from schemas import topics
from schemas.bus import Bus, Message, next_offsets
from schemas.errors import BusError, StorageError
from schemas.store import Store
from schemas.vantage import AtlasProbeMetadata

log = logging.getLogger(__name__)

STORED_SQL = """
SELECT vantage_key, latitude, longitude, uncertainty_km, country, basis, confidence, fetched_at
FROM vantage_points FINAL
WHERE fetched_at IS NOT NULL AND startsWith(vantage_key, 'atlas:')
"""


@dataclass
class VantageStats:
    messages: int = 0
    stored: int = 0
    without_position: int = 0
    dead_letters: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "stored": self.stored,
                "without_position": self.without_position, "dead_letters": self.dead_letters,
                "last_error": self.last_error}


def rows_for(records: list[AtlasProbeMetadata]) -> dict[str, list[Any]]:
    """``vantage_points`` columns for the records that carry a position."""
    columns: dict[str, list[Any]] = {name: [] for name in (
        "vantage_key", "latitude", "longitude", "uncertainty_km", "country", "basis",
        "confidence", "computed_at", "fetched_at", "us_distance_km")}
    for record in records:
        if not record.found:
            continue
        when = dt.datetime.fromtimestamp(record.fetched_at, dt.UTC)
        for vantage in atlas_probes_from_api({"results": [record.probe]}).values():
            for name, value in (
                ("vantage_key", vantage.key), ("latitude", vantage.latitude),
                ("longitude", vantage.longitude), ("uncertainty_km", vantage.uncertainty_km),
                ("country", vantage.country), ("basis", vantage.basis),
                ("confidence", vantage.confidence), ("computed_at", when), ("fetched_at", when),
                ("us_distance_km", vantage_us_distance_km(vantage)),
            ):
                columns[name].append(value)
    return columns


class VantagePointConsumer:
    def __init__(self, bus: Bus, storage: Storage, *,
                 group: str = "grenswacht-vantage-points") -> None:
        self.bus = bus
        self.storage = storage
        self.group = group
        self.stats = VantageStats()
        self._subscribed = False

    def poll_once(self, timeout: float = 0.5) -> int:
        if not self._subscribed:
            self.bus.subscribe([topics.VANTAGE_POINTS], self.group)
            self._subscribed = True
        messages = self.bus.poll(max_records=500, timeout=timeout)
        if messages:
            self.store(messages)
            self.bus.commit(next_offsets(messages))
        return len(messages)

    def store(self, messages: list[Message]) -> int:
        """Insert the positions of ``messages``; dead-letter the invalid ones."""
        records: list[AtlasProbeMetadata] = []
        dead = ResultSink(self.storage, self.bus)
        for message in messages:
            try:
                records.append(AtlasProbeMetadata.from_bytes(message.value))
            except ValidationError as exc:
                dead.dead_letter(message, "scheduler", "invalid_probe_metadata",
                                 str(exc)[:500])
        columns = rows_for(records)
        count = len(columns["vantage_key"])
        if count:
            token = hashlib.sha256(b"".join(m.value for m in messages)).hexdigest()[:32]
            self.storage.insert("vantage_points", columns, dedup_token=token)
        dead.flush()
        self.stats.messages += len(messages)
        self.stats.stored += count
        self.stats.without_position += sum(1 for r in records if r.found) - count
        self.stats.dead_letters += len(messages) - len(records)
        return count

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop``; a failing insert is retried (nothing was committed)."""
        while not stop.is_set():
            try:
                self.poll_once()
            except (StorageError, BusError) as exc:
                self.stats.last_error = str(exc)
                log.warning("vantage points: %s; reading the batch again in 5 s", exc)
                stop.wait(5.0)
                self.bus.seek_to_committed()


def refresh_registry(registry: VantageRegistry, storage: Store) -> int:
    """Load the stored, fetched Atlas probe positions into ``registry``; return how many."""
    rows = storage.query(STORED_SQL).as_dicts()
    registry.add_stored(rows)
    return len(rows)
