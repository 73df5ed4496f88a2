"""The scheduler's inbox: one consumer (group ``atlas.probe_metadata.group``) over the
topics the scheduler reads, each with a handler.

* :data:`~schemas.topics.RESULTS` -> :meth:`ProbeMetadataFetcher.observe` (probe ids);
* :data:`~schemas.topics.CONFIRM_REQUESTS` -> :meth:`Confirmer.enqueue`.

A handler takes the batch's messages of its topic and keeps what it needs in its state
file; :meth:`Inbox.poll_once` commits the batch's offsets only after every handler
returned (state saved): at least once, nothing lost. A handler's failure is logged and the
batch is not committed; the consumer rewinds and reads it again after a pause.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from schemas.bus import Bus, Message, next_offsets
from schemas.errors import GrenswachtError

LOG = logging.getLogger(__name__)
Handler = Callable[[Sequence[Message]], object]


class Inbox:
    def __init__(self, bus: Bus, group: str, handlers: Mapping[str, Handler]) -> None:
        self.bus = bus
        self.group = group
        self.handlers = dict(handlers)
        self.messages = 0
        self.failures = 0
        self.last_error = ""
        self._subscribed = False

    def poll_once(self, timeout: float = 0.5) -> int:
        if not self._subscribed:
            self.bus.subscribe(sorted(self.handlers), self.group)
            self._subscribed = True
        messages = self.bus.poll(max_records=1000, timeout=timeout)
        if not messages:
            return 0
        for topic, handler in self.handlers.items():
            mine = [m for m in messages if m.topic == topic]
            if mine:
                handler(mine)
        self.bus.commit(next_offsets(messages))
        self.messages += len(messages)
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except GrenswachtError as exc:
                self.failures += 1
                self.last_error = str(exc)
                LOG.error("scheduler inbox: %s; reading the batch again in 5 s", exc)
                stop.wait(5.0)
                try:
                    self.bus.seek_to_committed()
                except GrenswachtError as again:
                    LOG.error("scheduler inbox: cannot rewind: %s", again)
