"""The one retry policy (schemas/retry.py) and the one Retry-After parser."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from schemas.errors import BusClosed, BusError, StorageUnavailable
from schemas.retry import RetryPolicy, parse_retry_after


def test_retry_after_seconds_dates_and_junk() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", 3.0) == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("  ", 2.0) == 2.0


def test_backoff_doubles_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(initial_s=0.5, max_s=4.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=60.0) == 4.0


def test_call_retries_transient_errors_only_and_reports_each_wait() -> None:
    waits: list[tuple[str, float, int]] = []
    slept: list[float] = []
    failures = [StorageUnavailable("down", retry_after=2.0), BusError("flush")]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "stored"

    policy = RetryPolicy(initial_s=0.1, max_s=10.0)
    assert policy.call(flaky, retry_on=(StorageUnavailable, BusError), sleep=slept.append,
                       on_retry=lambda e, s, n: waits.append((type(e).__name__, s, n))) \
        == "stored"
    assert waits == [("StorageUnavailable", 2.0, 1), ("BusError", 0.2, 2)]
    assert slept == [2.0, 0.2]
    calls = []

    def closed() -> None:
        calls.append(1)
        raise BusClosed("closed")

    with pytest.raises(BusClosed):
        policy.call(closed, retry_on=(BusError,), never=(BusClosed,), sleep=slept.append)
    assert calls == [1]
    with pytest.raises(ValueError):
        policy.call(lambda: int("x"), retry_on=(BusError,))


def test_attempts_and_stop_bound_the_retries() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise StorageUnavailable("down")

    with pytest.raises(StorageUnavailable):
        RetryPolicy(0.0, 0.0, attempts=3).call(down, retry_on=(StorageUnavailable,))
    assert len(calls) == 3
    stop = threading.Event()
    stop.set()
    calls.clear()
    with pytest.raises(StorageUnavailable):
        RetryPolicy(5.0, 5.0).call(down, retry_on=(StorageUnavailable,), stop=stop)
    assert len(calls) == 1
