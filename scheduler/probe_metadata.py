"""RIPE Atlas probe metadata, fetched automatically for every probe that results name.

:meth:`ProbeMetadataFetcher.observe` reads result messages (the scheduler's own consumer
group on the results topic, see :mod:`scheduler.inbox`) and notes each RIPE Atlas
``prb_id`` (self-hosted ids, ``10,000,000-19,999,999``, are not Atlas probes).
:meth:`ProbeMetadataFetcher.fetch` asks the probe API for the probes never fetched, or
fetched longer than ``refresh_s`` ago (a week) and seen since, ``batch_size`` ids per
request (``/api/v2/probes/?id__in=...``, no key needed), and publishes one
:class:`~schemas.vantage.AtlasProbeMetadata` per probe on
:data:`~schemas.topics.VANTAGE_POINTS` (the probe object as received; ``found=False`` for
an id the API does not know). The consumer ``consumers.vantage_points`` stores them in
``vantage_points`` with their fetch date.

State (``<data_dir>/atlas-probes.json``): probe id -> ``[fetched_at, last_seen]``
(``fetched_at = 0``: never). It is saved before the results' offsets are committed, so an
id seen is never forgotten; ``fetched_at`` is set only after the bus acknowledged the
metadata. At most :data:`MAX_PROBES` ids are kept (the least recently seen go first; RIPE
Atlas has about 13,000 connected probes). Offline (no network) a fetch fails, is logged and
retried at the next run; the configured ``jurisdiction.atlas_probe_files`` still place the
probes meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson

from scheduler.jsonstate import JsonState
from scheduler.settings import ProbeMetadataSettings
from schemas.bus import Bus, Message
from schemas.topics import HEADER_ORIGIN, HEADER_SOURCE, VANTAGE_POINTS
from schemas.vantage import AtlasProbeMetadata, is_atlas_probe

LOG = logging.getLogger(__name__)
MAX_PROBES = 200_000


class ProbeSource(Protocol):
    def probes(self, **filters: Any) -> list[dict[str, Any]]: ...


def probe_ids(messages: Iterable[Message]) -> set[int]:
    """The RIPE Atlas probe ids that result messages name (unparseable ones are skipped:
    the ingest consumer dead-letters them)."""
    found: set[int] = set()
    for message in messages:
        try:
            value = orjson.loads(message.value)
        except orjson.JSONDecodeError:
            continue
        probe = value.get("prb_id") if isinstance(value, dict) else None
        if isinstance(probe, int) and not isinstance(probe, bool) and is_atlas_probe(probe):
            found.add(probe)
    return found


class ProbeMetadataFetcher:
    """The constructor does no I/O; ``state`` is loaded by the caller."""

    def __init__(
        self,
        client: ProbeSource,
        bus: Bus,
        state: JsonState,
        settings: ProbeMetadataSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.bus = bus
        self.state = state
        self.settings = settings
        self.clock = clock
        self.fetched = 0
        self.not_found = 0

    @property
    def probes(self) -> dict[str, list[float]]:
        table: dict[str, list[float]] = self.state.data.setdefault("probes", {})
        return table

    def observe(self, messages: Iterable[Message]) -> int:
        """Note the Atlas probes these result messages name; return how many are new."""
        now = self.clock()
        new = 0
        with self.state.lock:
            table = self.probes
            for probe in probe_ids(messages):
                entry = table.get(str(probe))
                if entry is None:
                    table[str(probe)] = [0.0, now]
                    new += 1
                else:
                    entry[1] = now
            if len(table) > MAX_PROBES:
                for key, _ in sorted(table.items(), key=lambda kv: kv[1][1])[
                    : len(table) - MAX_PROBES
                ]:
                    del table[key]
            if new:  # before the caller commits the offsets (last-seen times may lag)
                self.state.save()
        return new

    def due(self, now: float | None = None) -> list[int]:
        """Probe ids to fetch: never fetched, or fetched ``refresh_s`` ago and seen since."""
        now = self.clock() if now is None else now
        refresh = self.settings.refresh_s
        with self.state.lock:
            return sorted(
                int(key)
                for key, (fetched, seen) in self.probes.items()
                if fetched <= 0 or (now - fetched >= refresh and seen >= fetched)
            )

    def fetch(self) -> int:
        """Fetch what is due, in batches; return how many probes were published."""
        published = 0
        due = self.due()
        size = self.settings.batch_size
        for start in range(0, len(due), size):
            batch = due[start : start + size]
            objects = self.client.probes(
                id__in=",".join(str(i) for i in batch), page_size=size
            )
            fetched_at = self.clock()
            by_id = {int(o["id"]): o for o in objects if isinstance(o.get("id"), int)}
            for probe in batch:
                found = probe in by_id
                record = AtlasProbeMetadata(
                    probe_id=probe, fetched_at=fetched_at, found=found,
                    probe=by_id.get(probe, {}),
                )
                self.bus.publish(
                    VANTAGE_POINTS,
                    record.to_bytes(),
                    key=str(probe).encode(),
                    headers=[(HEADER_SOURCE, b"scheduler"), (HEADER_ORIGIN, b"atlas-probes")],
                )
                self.not_found += not found
            self.bus.flush()
            with self.state.lock:
                for probe in batch:
                    entry = self.probes.setdefault(str(probe), [0.0, fetched_at])
                    entry[0] = fetched_at
                self.state.save()
            published += len(batch)
            self.fetched += len(batch)
        if published:
            LOG.info("fetched RIPE Atlas metadata of %d probes (%d unknown to the API)",
                     published, self.not_found)
        return published

    def status(self) -> dict[str, Any]:
        with self.state.lock:
            known = len(self.probes)
        return {"probes_known": known, "probes_fetched": self.fetched,
                "probes_not_found": self.not_found, "pending": len(self.due())}
