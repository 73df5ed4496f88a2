"""A hostile-input generator derived from real RIPE Atlas results (tests/fixtures/atlas).

Every case is one line of bytes made from a real result by one mutation family: type flips,
numeric extremes, NaN/Infinity, deep nesting, huge values, lone surrogates and NUL,
duplicate keys, truncation, and structure (extra or missing replies/hops). Deterministic
for a given seed. ``tests/consumers/test_hostile_ingest.py`` runs them through the real
ingest; ``GRENSWACHT_HOSTILE_CASES`` sets how many (CI: a few hundred; locally thousands).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "atlas"
SEED_FILES = ("traceroute/sagan_tests.jsonl", "traceroute/pierky_msm3082698_facebook.jsonl",
              "dns/sagan_tests.jsonl", "dns/pierky_msm1071935_lroot_nsid.jsonl",
              "ping/sagan_tests.jsonl")
EXTREMES: tuple[Any, ...] = (
    -1, 0, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**63 - 1,
    2**63, 2**64 - 1, 2**64, 2**100, -(2**63), 1e308, -1e308, 5e-324, 0.5, -0.0,
)
WRITABLE = tuple(v for v in EXTREMES if not isinstance(v, int) or -(2**63) <= v < 2**64)
"""The extremes orjson can write as numbers."""
OTHERS: tuple[Any, ...] = (None, True, False, "", "x" * 70, "1.2.3.4", [], {}, [1, 2], {"a": 1})
FAMILIES = ("type_flip", "numeric_extreme", "nan_infinity", "deep_nesting", "huge_value",
            "surrogate_nul", "duplicate_key", "truncation", "structure")


def seeds() -> list[dict[str, Any]]:
    return [orjson.loads(line) for name in SEED_FILES
            for line in (FIXTURES / name).read_bytes().splitlines() if line.strip()]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:6]):
            yield from _paths(inner, (*prefix, index))


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    node = value
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = new
    return value


def _leaf_paths(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [p for p in _paths(result) if p]


def case(rng: random.Random, seed: dict[str, Any], family: str, number: int) -> bytes:
    """One hostile line. ``number`` makes the natural key unique (msm_id)."""
    result = copy.deepcopy(seed)
    result["msm_id"] = 900_000_000 + number
    paths = _leaf_paths(result)
    path = rng.choice(paths)
    if family == "type_flip":
        return orjson.dumps(_set(result, path, rng.choice(OTHERS + WRITABLE[:6])))
    if family == "numeric_extreme":
        return _numeric(result, path, rng)
    if family == "nan_infinity":
        text = orjson.dumps(_set(result, path, "__X__"))
        return text.replace(b'"__X__"', rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"]))
    if family == "deep_nesting":
        depth = rng.choice([50, 300, 1200, 5000])
        text = orjson.dumps(_set(result, path, "__X__"))
        return text.replace(b'"__X__"', b"[" * depth + b"]" * depth)
    if family == "huge_value":
        size = rng.choice([70, 2000, 100_000, 900_000, 1_200_000])
        return orjson.dumps(_set(result, path, "h" * size))
    if family == "surrogate_nul":
        text = orjson.dumps(_set(result, path, "__X__"))
        bad = rng.choice([b'"\\ud800"', b'"a\\u0000b"', b'"\\udfff\\ud800"', b'"\xff\xfe"',
                          b'"\\u0000"'])
        return text.replace(b'"__X__"', bad)
    if family == "duplicate_key":
        key = rng.choice([k for k in result if isinstance(k, str)])
        value = rng.choice(OTHERS + EXTREMES)
        dup = orjson.dumps(key) + b":" + (str(value).encode() if isinstance(value, int)
                                          and not isinstance(value, bool)
                                          else orjson.dumps(value))
        text = orjson.dumps(result)
        if rng.random() < 0.5:
            return text[:1] + dup + b"," + text[1:]
        return text[:-1] + b"," + dup + b"}"
    if family == "truncation":
        text = orjson.dumps(result)
        return text[: rng.randrange(1, len(text))]
    return _structure(result, rng)


def _numeric(result: dict[str, Any], path: tuple[Any, ...], rng: random.Random) -> bytes:
    value = rng.choice(EXTREMES)
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        text = orjson.dumps(_set(result, path, "__X__"))  # orjson cannot write it: as text
        return text.replace(b'"__X__"', str(value).encode())
    return orjson.dumps(_set(result, path, value))


def _structure(result: dict[str, Any], rng: random.Random) -> bytes:
    hops = result.get("result")
    choice = rng.randrange(6)
    if isinstance(hops, list) and hops and isinstance(hops[0], dict):
        hop = hops[rng.randrange(len(hops))]
        if choice == 0 and isinstance(hop.get("result"), list):
            hop["result"] = hop["result"] * rng.choice([50, 100, 200])  # > 255 replies
        elif choice == 1:
            hops.append(copy.deepcopy(hop))  # a duplicate hop number
        elif choice == 2:
            for reply in hop.get("result") or []:
                if isinstance(reply, dict):
                    reply["icmpext"] = {"obj": [{"mpls": [{"label": rng.choice(WRITABLE)}]}]}
        elif choice == 3:
            hop["hop"] = rng.choice([0, 256, -1, "3", 2.5])
        else:
            result["result"] = hops * rng.choice([2, 20])
    elif isinstance(result.get("resultset"), list):
        result["resultset"] = result["resultset"] * rng.choice([2, 100, 3000])
    else:
        result.pop(rng.choice(["msm_id", "prb_id", "timestamp", "fw", "type"]), None)
    text = orjson.dumps(result)
    return text


def cases(count: int, seed: int = 12) -> Iterator[tuple[str, bytes]]:
    """(family, line) for ``count`` cases, every family in turn."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    real = seeds()
    for number in range(count):
        family = FAMILIES[number % len(FAMILIES)]
        yield family, case(rng, rng.choice(real), family, number)
