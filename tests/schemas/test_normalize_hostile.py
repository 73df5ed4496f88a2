"""Hostile input: whatever a producer sends, the normaliser either returns rows or raises
one of our ResultErrors (-> a dead letter with a reason), and never leaves partial rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.errors import ResultError
from schemas.normalize import RowBatch, normalize_into

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "atlas"
SEEDS = [
    json.loads(line)
    for name in ("traceroute/sagan_tests.jsonl", "dns/sagan_tests.jsonl", "ping/sagan_tests.jsonl")
    for line in (FIXTURES / name).read_text().splitlines()
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _mutate(value: Any, path: list[int], replacement: Any) -> Any:
    """Replace the node reached by following ``path`` (indexes modulo the children)."""
    if not path or not isinstance(value, dict | list) or not value:
        return replacement
    if isinstance(value, dict):
        key = sorted(value)[path[0] % len(value)]
        return {**value, key: _mutate(value[key], path[1:], replacement)}
    index = path[0] % len(value)
    return [*value[:index], _mutate(value[index], path[1:], replacement), *value[index + 1:]]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    path=st.lists(st.integers(0, 50), min_size=1, max_size=5),
    replacement=json_values,
)
def test_mutated_real_results_never_crash_and_never_leave_partial_rows(
    seed: dict[str, Any], path: list[int], replacement: Any
) -> None:
    result = _mutate(seed, path, replacement)
    batch = RowBatch()
    before = {table: batch.rows(table) for table in batch.tables}
    try:
        normalize_into(result, batch, source="fuzz")
    except ResultError as exc:
        assert exc.reason
        assert {table: batch.rows(table) for table in batch.tables} == before
    else:
        assert batch.rows("raw_results") == 1


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_arbitrary_json_is_refused_with_a_reason(value: Any) -> None:
    batch = RowBatch()
    try:
        normalize_into(value, batch, source="fuzz")
    except ResultError as exc:
        assert exc.reason
    else:
        raise AssertionError(f"accepted {value!r}")
