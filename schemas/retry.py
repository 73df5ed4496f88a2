"""One retry policy for every component (tenacity), and the one ``Retry-After`` parser.

What is retried is decided by the caller's exception types, and only transient failures
belong there: storage unavailable or full (:class:`~schemas.errors.StorageUnavailable`), a
bus that cannot flush, a rate-limited or unreachable RIPE Atlas, a receiver that is down. A
permanent error is never retried: it is isolated and dead-lettered (ingest) or reported.

The wait after the n-th failure is ``initial_s × 2^(n-1)``, capped at ``max_s``, and never
shorter than the ``retry_after`` the failure carries (a ``Retry-After`` header, a
backpressure hint), also capped at ``max_s``. :meth:`RetryPolicy.call` retries until the
call succeeds, ``attempts`` calls were made, or the ``stop`` event is set (a component
shutting down); it reports every wait through ``on_retry`` so the component can show in
its status that it is waiting and why.

Pure: no I/O of its own (the waiting is the stop event's, or ``sleep``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")

RetryHook = Callable[[BaseException, float, int], None]
"""``(error, seconds until the next attempt, failures so far)``."""


def parse_retry_after(value: str | None, default: float | None = None,
                      now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value (delta-seconds or an HTTP date);
    ``default`` when absent or unreadable. Never negative."""
    if value is None or not value.strip():
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def retry_after_of(error: BaseException) -> float:
    """The ``retry_after`` hint an error carries (0 when none)."""
    hint = getattr(error, "retry_after", None)
    return float(hint) if isinstance(hint, int | float) and hint > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_s: float = 0.2
    max_s: float = 30.0
    attempts: int | None = None
    """Most calls in all (None: until it succeeds or ``stop`` is set)."""

    def delay(self, failures: int, retry_after: float = 0.0) -> float:
        """Seconds to wait after the ``failures``-th failure in a row."""
        backoff = self.initial_s * 2.0 ** max(failures - 1, 0)
        return float(min(max(backoff, retry_after), self.max_s))

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        hint = retry_after_of(error) if error is not None else 0.0
        return self.delay(state.attempt_number, hint)

    def call(
        self,
        fn: Callable[[], T],
        *,
        retry_on: tuple[type[BaseException], ...],
        never: tuple[type[BaseException], ...] = (),
        stop: threading.Event | None = None,
        on_retry: RetryHook | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> T:
        """Call ``fn`` until it returns; re-raise its last error when ``attempts`` are used
        up or ``stop`` is set (then without waiting), or at once when the error is one of
        ``retry_on`` but also one of ``never`` (a closed bus is not going to open)."""
        stops: list[tenacity.stop.stop_base] = []
        if self.attempts is not None:
            stops.append(tenacity.stop_after_attempt(self.attempts))
        if stop is not None:
            stops.append(tenacity.stop_when_event_set(stop))

        def wait_for(seconds: float) -> None:
            if sleep is not None:
                sleep(seconds)
            elif stop is not None:
                stop.wait(seconds)
            else:
                time.sleep(seconds)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            if on_retry is not None and error is not None:
                seconds = state.next_action.sleep if state.next_action is not None else 0.0
                on_retry(error, float(seconds), state.attempt_number)

        retrying = tenacity.Retrying(
            sleep=wait_for,
            stop=tenacity.stop_any(*stops) if stops else tenacity.stop_never,
            wait=self._wait,
            retry=tenacity.retry_if_exception(
                lambda error: isinstance(error, retry_on) and not isinstance(error, never)),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)


__all__ = ["RetryHook", "RetryPolicy", "parse_retry_after", "retry_after_of"]
