"""One conversion of row timestamps, whatever carried them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from schemas.normalize import MAX_TIMESTAMP, MIN_TIMESTAMP, epoch_seconds, normalize

LINE = (Path(__file__).resolve().parent.parent / "fixtures" / "atlas" / "traceroute"
        / "sagan_tests.jsonl").read_text().splitlines()[0]


def test_rows_seconds_and_datetimes_agree() -> None:
    result = json.loads(LINE)
    [row, *_] = normalize(result).as_dicts("traceroute_hops")
    seconds = result["timestamp"]
    assert row["timestamp"] == seconds * 1000  # DateTime64(3) ticks in rows
    assert epoch_seconds(row["timestamp"]) == seconds
    assert epoch_seconds(seconds) == seconds  # toUnixTimestamp() in SQL
    assert epoch_seconds(dt.datetime.fromtimestamp(seconds, dt.UTC)) == seconds
    naive = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)  # ClickHouse
    assert epoch_seconds(naive) == seconds


def test_the_accepted_range_cannot_be_confused() -> None:
    for seconds in (MIN_TIMESTAMP, MAX_TIMESTAMP):
        assert epoch_seconds(seconds) == seconds
        assert epoch_seconds(seconds * 1000) == seconds
