"""Collection: RIPE Atlas results -> the results topic, with no gap and no needless repeat.

Results arrive on the stream while it is connected. Whenever it is (re)connected -- at
start, after a drop, after a restart -- the collector first subscribes, then backfills every
measurement from the REST results endpoint over ``[checkpoint - backfill_overlap_s, now]``,
so a result produced while nobody listened is fetched, and one that arrives on both paths
is published once per process (a short-lived "seen" set) and stored once in any case (the
ingest side keys on the natural result key).

The checkpoint (last result timestamp per measurement) advances only after the bus
acknowledged the results (``flush``), and is saved to a small JSON file: a crash between
publish and save re-fetches, never skips (at-least-once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from scheduler.jsonstate import JsonState
from schemas.bus import Bus
from schemas.errors import AtlasAPIError
from schemas.retry import RetryPolicy
from schemas.topics import HEADER_ORIGIN, HEADER_SOURCE, RESULTS, result_key

LOG = logging.getLogger(__name__)


class StateFile(JsonState):
    """``{"checkpoints": {msm_id: last_timestamp}, "measurements": {msm_id: key}}`` on disk,
    written atomically (:class:`~scheduler.jsonstate.JsonState`). The constructor does no
    I/O; :meth:`load` reads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.checkpoints: dict[int, int] = {}
        self.measurements: dict[int, str] = {}

    def load(self) -> StateFile:
        super().load()
        data = self.data
        self.checkpoints = {int(k): int(v) for k, v in data.get("checkpoints", {}).items()}
        self.measurements = {int(k): str(v) for k, v in data.get("measurements", {}).items()}
        return self

    def save(self) -> None:
        with self.lock:
            self.data = {
                "checkpoints": {str(k): v for k, v in sorted(self.checkpoints.items())},
                "measurements": {str(k): v for k, v in sorted(self.measurements.items())},
            }
            super().save()


class ResultSource(Protocol):
    """What the collector needs from :class:`scheduler.atlas.AtlasClient`."""

    def results(
        self, measurement_id: int, start: int | None = None, stop: int | None = None
    ) -> list[tuple[dict[str, Any], bytes]]: ...

    def open_stream(self, measurement_ids: Any) -> Any: ...


def natural_key(result: dict[str, Any]) -> tuple[Any, ...]:
    return (
        result.get("msm_id"),
        result.get("prb_id"),
        result.get("timestamp"),
        result.get("dst_addr") or result.get("dst_name"),
    )


class Collector:
    def __init__(
        self,
        client: ResultSource,
        bus: Bus,
        state: StateFile,
        *,
        overlap_s: int = 900,
        reconnect_max_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.bus = bus
        self.state = state
        self.overlap_s = overlap_s
        self.reconnect_max_s = reconnect_max_s
        self.clock = clock
        self.measurement_ids: set[int] = set(state.measurements)
        self.published = 0
        self.repeats_skipped = 0
        self.disconnects = 0
        self._seen: dict[int, set[tuple[Any, ...]]] = {}
        self._pending: dict[int, int] = {}
        self._stream: Any = None
        self._subscribed: set[int] = set()
        self._lock = threading.Lock()
        self._io_lock = threading.RLock()  # stream thread and backfill job share the state

    # -- publishing ------------------------------------------------------------------------
    def _publish(self, result: dict[str, Any], raw: bytes, origin: str) -> bool:
        with self._io_lock:
            return self._publish_locked(result, raw, origin)

    def _publish_locked(self, result: dict[str, Any], raw: bytes, origin: str) -> bool:
        msm_id = result.get("msm_id")
        if not isinstance(msm_id, int):
            LOG.warning("ignoring an Atlas result without msm_id (%s)", origin)
            return False
        key = natural_key(result)
        seen = self._seen.setdefault(msm_id, set())
        if key in seen:
            self.repeats_skipped += 1
            return False
        seen.add(key)
        self.bus.publish(
            RESULTS,
            raw,
            key=result_key(result),
            headers=[(HEADER_SOURCE, b"atlas"), (HEADER_ORIGIN, origin.encode())],
        )
        self.published += 1
        timestamp = int(result.get("timestamp") or 0)
        if timestamp > self._pending.get(msm_id, 0):
            self._pending[msm_id] = timestamp
        return True

    def commit(self) -> None:
        """Flush the bus, then advance and save the checkpoints (never the other way)."""
        with self._io_lock:
            self._commit_locked()

    def _commit_locked(self) -> None:
        if not self._pending:
            return
        self.bus.flush()
        for msm_id, timestamp in self._pending.items():
            if timestamp > self.state.checkpoints.get(msm_id, 0):
                self.state.checkpoints[msm_id] = timestamp
        self._pending.clear()
        self.state.save()
        self._prune()

    def _prune(self) -> None:
        for msm_id, seen in self._seen.items():
            floor = self.state.checkpoints.get(msm_id, 0) - self.overlap_s
            self._seen[msm_id] = {k for k in seen if (k[2] or 0) >= floor}

    # -- REST backfill ---------------------------------------------------------------------
    def backfill(self, measurement_ids: Iterable[int] | None = None) -> int:
        """Fetch ``[checkpoint - overlap, now]`` of each measurement; return how many new
        results were published."""
        published = 0
        now = int(self.clock())
        for msm_id in sorted(measurement_ids or self.measurement_ids):
            checkpoint = self.state.checkpoints.get(msm_id)
            start = None if checkpoint is None else max(0, checkpoint - self.overlap_s)
            for result, raw in self.client.results(msm_id, start=start, stop=now):
                published += self._publish(result, raw, f"atlas-rest:{msm_id}")
            self.commit()
        return published

    # -- stream ----------------------------------------------------------------------------
    def set_measurements(self, measurement_ids: Iterable[int]) -> None:
        with self._lock:
            self.measurement_ids = set(measurement_ids)

    def add_measurement(self, measurement_id: int) -> None:
        """Collect one more measurement (a one-off the scheduler just created); the stream
        subscribes to it and backfills it at the next ``pump``."""
        with self._lock:
            self.measurement_ids.add(measurement_id)

    def connect(self) -> None:
        """(Re)connect the stream, subscribe, then backfill the gap."""
        self.close()
        with self._lock:
            ids = sorted(self.measurement_ids)
        self._stream = self.client.open_stream(ids)
        self._subscribed = set(ids)
        self.backfill(ids)

    def pump(self, seconds: float) -> int:
        """Read the stream for ``seconds`` and publish what arrives; raises
        :class:`~scheduler.atlas.StreamDisconnected` (an ``AtlasAPIError``) on a drop."""
        if self._stream is None:
            self.connect()
        with self._lock:
            new = self.measurement_ids - self._subscribed
        for msm_id in sorted(new):
            self._stream.subscribe("result", msm=msm_id)
            self._subscribed.add(msm_id)
        if new:
            self.backfill(new)
        count = 0
        try:
            for event, payload, raw in self._stream.events(seconds):
                if event == "atlas_result" and isinstance(payload, dict):
                    count += self._publish(payload, raw, f"atlas-stream:{payload.get('msm_id')}")
                elif event == "atlas_error":
                    LOG.warning("RIPE Atlas stream error: %s", payload)
        finally:
            self.commit()
        return count

    def run(self, stop: threading.Event, window_s: float = 1.0) -> None:
        """Collect until ``stop`` is set, reconnecting (with backoff) and backfilling after
        every drop."""
        policy = RetryPolicy(initial_s=1.0, max_s=self.reconnect_max_s)

        def step() -> None:
            if self._stream is None:
                self.connect()
            self.pump(window_s)

        def reconnecting(error: BaseException, seconds: float, failures: int) -> None:
            self.disconnects += 1
            self.close()
            LOG.warning("%s; reconnecting in %.1f s", error, seconds)

        while not stop.is_set():
            try:  # the one retry policy: backoff (or the server's retry_after), capped
                policy.call(step, retry_on=(AtlasAPIError,), stop=stop, on_retry=reconnecting)
            except AtlasAPIError:
                break  # only when stop was set meanwhile
        self.close()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        self._subscribed = set()
