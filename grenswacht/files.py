"""Read RIPE Atlas result files (JSON array, JSON Lines, either gzipped) as bus messages.

Each result becomes one message for the results topic, with the bytes as they stand in the
file (JSON Lines) and the origin ``file:line`` in a header. Problems the reader can see
itself become dead-letter messages (header ``gw-dead-letter``) so the ingest consumer
stores them with the reason: an oversized line, a file that is truncated or not JSON at
all. What was read before a truncation is kept.
"""

from __future__ import annotations

import gzip
import itertools
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from consumers.ingest import HEADER_DEAD_LETTER, HEADER_DETAIL, HEADER_PAYLOAD_SIZE
from schemas import topics
from schemas.errors import InputError

DEAD_LETTER_SAMPLE = 64 * 1024
"""Bytes of an oversized line kept in its dead letter (the size is recorded in full)."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    position: int
    """Bytes of the (uncompressed or compressed) file consumed so far, for progress."""


Headers = tuple[tuple[str, bytes], ...]


def _headers(origin: str, extra: Headers = ()) -> Headers:
    return ((topics.HEADER_SOURCE, b"file"), (topics.HEADER_ORIGIN, origin.encode()), *extra)


def _dead(origin: str, value: bytes, reason: str, detail: str, size: int, pos: int) -> FileRecord:
    return FileRecord(
        value[:DEAD_LETTER_SAMPLE], None,
        _headers(origin, ((HEADER_DEAD_LETTER, reason.encode()), (HEADER_DETAIL, detail.encode()),
                          (HEADER_PAYLOAD_SIZE, str(size).encode()))),
        pos,
    )


_DST_NAME = re.compile(rb'"dst_name"\s*:\s*"([^"\\]{0,255})"')
_DST_ADDR = re.compile(rb'"dst_addr"\s*:\s*"([^"\\]{0,255})"')


def _key(line: bytes) -> bytes | None:
    """The partition key (the measured target) without decoding the whole line: the key
    only routes the message; normalisation reads the decoded result itself."""
    match = _DST_NAME.search(line) or _DST_ADDR.search(line)
    return match.group(1) if match else None  # same choice as schemas.topics.result_key


def _open(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return raw, gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw, raw


def read_results(path: Path) -> Iterator[FileRecord]:
    """Yield one record per result in ``path``. Raises InputError when the file cannot be
    opened; damage inside the file becomes dead-letter records."""
    try:
        raw, stream = _open(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    name = str(path)
    line_no = 0
    with raw:
        try:
            first = stream.readline()
            start = first.strip()[:1]
            if start == b"[" or (start == b"{" and not _is_result_line(first.strip())):
                # one JSON document (an array of results, an API page, a pretty-printed
                # result), not JSON Lines
                yield from _read_document(name, first + stream.read(), raw)
                return
            for line in itertools.chain((first,), stream):
                line_no += 1
                stripped = line.strip()
                if not stripped:
                    continue
                origin = f"{name}:{line_no}"
                if len(stripped) > topics.MAX_MESSAGE_BYTES:
                    yield _dead(origin, stripped, "oversized",
                                f"line of {len(stripped)} bytes > {topics.MAX_MESSAGE_BYTES}",
                                len(stripped), raw.tell())
                    continue
                yield FileRecord(stripped, _key(stripped), _headers(origin), raw.tell())
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
            origin = f"{name}:{line_no + 1}"
            yield _dead(origin, b"", "truncated_input",
                        f"{name}: unreadable after line {line_no}: {exc}", 0, raw.tell())


def _is_result_line(line: bytes) -> bool:
    """True when ``line`` is a whole JSON object that is not an API page of results."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return not (isinstance(value, dict) and "type" not in value and "results" in value)


def _read_document(name: str, data: bytes, raw: IO[bytes]) -> Iterator[FileRecord]:
    try:
        values = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield _dead(f"{name}:{exc.lineno}", data, "invalid_json",
                    f"{name}: neither JSON Lines nor one JSON document: {exc}", len(data),
                    raw.tell())
        return
    if isinstance(values, dict) and isinstance(values.get("results"), list):
        values = values["results"]  # an API page: {"count", "next", "results": [...]}
    elif isinstance(values, dict) and "type" in values:
        values = [values]  # one pretty-printed result
    if not isinstance(values, list):
        yield _dead(f"{name}:1", data, "not_a_result_file",
                    f"{name}: a JSON {type(values).__name__} that holds no results", len(data),
                    raw.tell())
        return
    for index, value in enumerate(values):
        # an element's exact text is not kept by the parser: re-serialised, same values
        payload = orjson.dumps(value)
        origin = f"{name}[{index}]"
        if len(payload) > topics.MAX_MESSAGE_BYTES:
            yield _dead(origin, payload, "oversized", f"element of {len(payload)} bytes",
                        len(payload), raw.tell())
            continue
        key = topics.result_key(value) if isinstance(value, dict) else None
        yield FileRecord(payload, key, _headers(origin), raw.tell())


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files named, and every ``*.json``, ``*.jsonl`` (``.gz``) file under folders named."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and any(
                    p.name.endswith(s) for s in (".json", ".jsonl", ".json.gz", ".jsonl.gz")
                ))
            )
        elif path.exists():
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return out


__all__ = ["FileRecord", "expand_paths", "file_size", "read_results"]
