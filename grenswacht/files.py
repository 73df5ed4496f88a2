"""Read RIPE Atlas result files (JSON Lines, a JSON array, an API page; any of them gzipped)
as bus messages, with bounded memory whatever the file holds.

Each result becomes one message for the results topic, with the bytes as they stand in the
file (JSON Lines; array elements are re-serialised) and the origin ``file:line`` (or
``file[index]``) in a header. Problems the reader can see itself become dead-letter
messages (header ``gw-dead-letter``), so the ingest consumer stores them with the reason.

* **Framing** is decided from the file's first lines, never from line 1 alone: a file
  starting with ``[`` is a JSON array; otherwise it is JSON Lines when at least half of its
  first :data:`SNIFF_LINES` lines are whole JSON objects (so a broken first line costs only
  itself), else one JSON document (a pretty-printed result or an API page
  ``{"count", "next", "results": [...]}``). In JSON Lines a broken line costs only itself.
  A JSON document is streamed (ijson, C backend); an element that is broken or larger than
  the line cap ends that document with a dead letter saying where (what came before is
  kept).
* **Line cap** (``ingest.max_line_bytes``): a longer line is never held in memory: its
  dead letter keeps the first :data:`DEAD_LETTER_SAMPLE` bytes, its size and a sha256
  computed while it streams by.
* **gzip** is streamed; more than ``ingest.max_file_bytes`` decompressed, or a
  decompressed/compressed ratio above ``ingest.max_gzip_ratio`` (once past
  :data:`RATIO_GRACE_BYTES`), is a bomb: a dead letter, and the rest of that file is not
  read. A truncated gzip keeps what was read; the cut-off last line is in its dead letter.
* **Not a regular file**: pipes are read (same limits); devices (``/dev/zero``), sockets
  and the like are refused with :class:`~schemas.errors.InputError`.

(Longer than the usual ~400 lines on purpose: framing, the bounded line reader and the
streamed document reader share the limits and the dead-letter records; split, each would
need the others' internals.)
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import re
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ijson
import orjson

from consumers.ingest import (
    HEADER_DEAD_LETTER,
    HEADER_DETAIL,
    HEADER_PAYLOAD_SHA256,
    HEADER_PAYLOAD_SIZE,
)
from schemas import topics
from schemas.errors import InputError

DEAD_LETTER_SAMPLE = 64 * 1024
"""Bytes of an oversized line kept in its dead letter (the size and hash are of all of it)."""
SNIFF_LINES = 16
SNIFF_BYTES = 4 * 1024 * 1024
CHUNK = 1 << 20
RATIO_GRACE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Bounds of one file read (``ingest.*`` settings)."""

    max_line_bytes: int = topics.MAX_MESSAGE_BYTES
    max_file_bytes: int = 64 * 1024**3
    max_gzip_ratio: float = 1000.0


@dataclass(frozen=True, slots=True)
class FileRecord:
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    position: int
    """Bytes of the (uncompressed or compressed) file consumed so far, for progress."""


Headers = tuple[tuple[str, bytes], ...]


class _Stop(Exception):  # noqa: N818 - internal: a limit ends the reading of a file
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _headers(origin: str, extra: Headers = ()) -> Headers:
    return ((topics.HEADER_SOURCE, b"file"), (topics.HEADER_ORIGIN, origin.encode()), *extra)


def _dead(origin: str, sample: bytes, reason: str, detail: str, size: int, pos: int,
          sha256: str = "") -> FileRecord:
    extra: Headers = ((HEADER_DEAD_LETTER, reason.encode()), (HEADER_DETAIL, detail.encode()),
                      (HEADER_PAYLOAD_SIZE, str(size).encode()))
    if sha256:
        extra += ((HEADER_PAYLOAD_SHA256, sha256.encode()),)
    return FileRecord(sample[:DEAD_LETTER_SAMPLE], None, _headers(origin, extra), pos)


_DST_NAME = re.compile(rb'"dst_name"\s*:\s*"([^"\\]{0,255})"')
_DST_ADDR = re.compile(rb'"dst_addr"\s*:\s*"([^"\\]{0,255})"')


def _key(line: bytes) -> bytes | None:
    """The partition key (the measured target) without decoding the whole line: the key
    only routes the message; normalisation reads the decoded result itself."""
    match = _DST_NAME.search(line) or _DST_ADDR.search(line)
    return match.group(1) if match else None  # same choice as schemas.topics.result_key


class _Counting:
    """The file under any gzip layer, counting the (compressed) bytes read."""

    mode = "rb"

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read1(size) if size > 0 else self.raw.read()  # type: ignore[attr-defined]
        self.count += len(data)
        return data


class _Limited:
    """A binary stream that stops (``_Stop``) past the file's decompressed-size or ratio
    limit."""

    def __init__(self, stream: Any, raw: _Counting, limits: ReadLimits,
                 compressed: bool) -> None:
        self.stream, self.raw, self.limits, self.compressed = stream, raw, limits, compressed
        self.total = 0

    def read(self, size: int = CHUNK) -> bytes:
        # read1: what one read of the layer below gives (a truncated gzip then still hands
        # over everything before the cut; a pipe does not wait for a full chunk)
        reader = getattr(self.stream, "read1", self.stream.read)
        data: bytes = reader(size)
        self.total += len(data)
        if self.total > self.limits.max_file_bytes:
            raise _Stop("input_too_large", f"more than {self.limits.max_file_bytes:,} bytes "
                                           "(ingest.max_file_bytes): the rest is not read")
        if self.compressed and self.total > RATIO_GRACE_BYTES:
            ratio = self.total / max(self.position, 1)
            if ratio > self.limits.max_gzip_ratio:
                raise _Stop("gzip_bomb", f"{self.total:,} bytes out of {self.position:,} "
                                         f"compressed (ratio {ratio:,.0f} > "
                                         f"{self.limits.max_gzip_ratio:,.0f}, "
                                         "ingest.max_gzip_ratio): the rest is not read")
        return data

    @property
    def position(self) -> int:
        return self.raw.count


@dataclass(slots=True)
class _Line:
    number: int
    data: bytes | None
    """The line (without its newline), or None: longer than the cap, or the error."""
    size: int = 0
    sample: bytes = b""
    sha256: str = ""
    error: tuple[str, str] | None = None
    """(reason, detail) when reading stopped here (truncated, a bomb, too large)."""


_READ_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, OSError)


def _lines(source: _Replay, stream: _Limited, cap: int) -> Iterator[_Line]:
    """Lines of ``source`` with at most ``cap`` bytes held per line; a read error or limit
    ends them with an error line holding the cut-off rest."""
    carry = b""
    number = 0
    over: Any = None  # the hash of a line past the cap
    size = 0
    sample = b""
    while True:
        try:
            chunk = source.read(CHUNK)
        except _Stop as stop:
            yield _Line(number + 1, None, stream.total, carry[:DEAD_LETTER_SAMPLE] or sample,
                        error=(stop.reason, stop.detail))
            return
        except _READ_ERRORS as exc:
            yield _Line(number + 1, None, len(carry), carry[:DEAD_LETTER_SAMPLE] or sample,
                        error=("truncated_input", f"unreadable after line {number}: {exc}"))
            return
        if not chunk:
            break
        if over is not None:
            end = chunk.find(b"\n")
            if end < 0:
                over.update(chunk)
                size += len(chunk)
                continue
            over.update(chunk[:end])
            size += end
            number += 1
            yield _Line(number, None, size, sample, over.hexdigest())
            over = None
            chunk = chunk[end + 1:]
        parts = (carry + chunk).split(b"\n") if carry else chunk.split(b"\n")
        carry = parts.pop()
        for part in parts:
            number += 1
            if len(part) > cap:
                yield _Line(number, None, len(part), part[:DEAD_LETTER_SAMPLE],
                            hashlib.sha256(part).hexdigest())
            else:
                yield _Line(number, part)
        if len(carry) > cap:
            over, size, sample = hashlib.sha256(carry), len(carry), carry[:DEAD_LETTER_SAMPLE]
            carry = b""
    if over is not None:
        yield _Line(number + 1, None, size, sample, over.hexdigest())
    elif carry:
        yield _Line(number + 1, carry)


def check_readable(path: Path) -> None:
    """Raise InputError unless ``path`` is a regular file or a pipe."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        kind = ("a character device" if stat.S_ISCHR(mode) else "a block device"
                if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise InputError(f"{path}: is {kind}, not a file of results")


def _open(path: Path, limits: ReadLimits) -> tuple[IO[bytes], _Limited]:
    check_readable(path)
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    counting = _Counting(raw)
    head = raw.peek(2)[:2]
    if head == b"\x1f\x8b":
        unzipped = gzip.GzipFile(fileobj=counting, mode="rb")  # type: ignore[call-overload]
        return raw, _Limited(unzipped, counting, limits, True)
    return raw, _Limited(counting, counting, limits, False)


def _is_object_line(line: bytes) -> bool:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and not ("type" not in value and "results" in value)


class _NotADocument(Exception):  # noqa: N818 - internal: fall back to JSON Lines
    pass


def _sniff(stream: _Limited) -> _Replay:
    """Read the file's first lines (at most :data:`SNIFF_LINES` lines or
    :data:`SNIFF_BYTES`) to decide its framing; a read error is kept for later."""
    head = bytearray()
    error: Exception | None = None
    ended = False
    while head.count(b"\n") < SNIFF_LINES and len(head) < SNIFF_BYTES:
        try:
            chunk = stream.read(CHUNK)
        except (_Stop, *_READ_ERRORS) as exc:
            error = exc
            break
        if not chunk:
            ended = True
            break
        head += chunk
    replay = _Replay(bytes(head), stream, error)
    replay.whole = ended
    return replay


def _is_document(sniffed: _Replay) -> bool:
    """A JSON array, or fewer than half of the first whole lines are JSON objects."""
    head = sniffed.head
    if head.lstrip()[:1] == b"[":
        return True
    lines = [line for line in head.split(b"\n")[:SNIFF_LINES] if line.strip()]
    if not sniffed.whole and not head.endswith(b"\n") and lines:
        lines.pop()  # cut off by the sniff
    if not lines:
        return False
    whole = sum(1 for line in lines if _is_object_line(line))
    return whole * 2 < len(lines)


def read_results(path: Path, limits: ReadLimits | None = None) -> Iterator[FileRecord]:
    """Yield one record per result in ``path``. Raises InputError when the file cannot be
    opened; damage inside the file becomes dead-letter records."""
    limits = limits or ReadLimits()
    raw, stream = _open(path, limits)
    name = str(path)
    with raw:
        source = _sniff(stream)
        if not _is_document(source):
            yield from _read_lines(name, _lines(source, stream, limits.max_line_bytes), stream,
                                   limits)
            return
        try:
            yield from _read_document(name, source, stream)
            return
        except _NotADocument as exc:
            if not stat.S_ISREG(path.stat().st_mode):
                yield _dead(f"{name}[0]", b"", "not_a_result_file", str(exc), stream.total,
                            stream.position)
                return
            why = exc
    # not one JSON document after all: every line on its own (the file read again)
    raw, stream = _open(path, limits)
    with raw:
        lines = list(_read_lines(name, _lines(_Replay(b"", stream), stream,
                                              limits.max_line_bytes), stream, limits))
    if any(HEADER_DEAD_LETTER not in dict(r.headers) for r in lines) or len(lines) != 1:
        yield from lines
    else:  # one line that is no result either: say that the file is not readable
        yield _dead(f"{name}[0]", lines[0].value, "not_a_result_file", str(why),
                    stream.total, stream.position)


def _read_lines(name: str, lines: Iterable[_Line], stream: _Limited,
                limits: ReadLimits) -> Iterator[FileRecord]:
    for line in lines:
        origin = f"{name}:{line.number}"
        if line.error is not None:
            yield _dead(origin, line.sample, line.error[0], f"{name}: {line.error[1]}",
                        line.size, stream.position)
            return
        if line.data is None:
            yield _dead(origin, line.sample, "oversized",
                        f"line of {line.size:,} bytes > {limits.max_line_bytes:,} "
                        "(ingest.max_line_bytes)", line.size, stream.position, line.sha256)
            continue
        stripped = line.data.strip()
        if stripped:
            yield FileRecord(stripped, _key(stripped), _headers(origin), stream.position)


class _Replay:
    """``head`` (bytes already read while sniffing), then the rest of ``stream``, or the
    ``error`` that ended the sniffing."""

    def __init__(self, head: bytes, stream: _Limited, error: Exception | None = None) -> None:
        self.head, self.stream, self.error = head, stream, error
        self._offset = 0
        self.whole = False
        """True when ``head`` is the whole file."""

    def read(self, size: int = CHUNK) -> bytes:
        if self._offset < len(self.head):
            out = self.head[self._offset:self._offset + size]
            self._offset += len(out)
            return out
        if self.error is not None:
            raise self.error
        return self.stream.read(size)


class _Counted:
    """Counts the bytes the JSON parser pulls since the last element (the element cap)."""

    def __init__(self, source: _Replay, cap: int) -> None:
        self.source, self.cap, self.since = source, cap, 0

    def read(self, size: int = CHUNK) -> bytes:
        data = self.source.read(size)
        self.since += len(data)
        if self.since > self.cap + CHUNK:
            raise _Stop("oversized", f"an element of more than {self.cap:,} bytes "
                                     "(ingest.max_line_bytes): the rest is not read")
        return data


def _values(events: Iterator[tuple[str, str, Any]]) -> Any:
    """The results of a document's parse events: array items, an API page's ``results``
    items, or the one object."""
    first = next(events)
    if first[1] == "start_array":
        return ijson.items(itertools.chain([first], events), "item")
    if first[1] != "start_map":
        return [first[2]]
    seen = [first]
    for event in events:
        seen.append(event)
        if event[0] == "results" and event[1] == "start_array":
            return ijson.items(itertools.chain(seen, events), "results.item")
        if event[0] == "" and event[1] == "end_map":
            break
    return ijson.items(iter(seen), "")


def _read_document(name: str, source: _Replay, stream: _Limited) -> Iterator[FileRecord]:
    counted = _Counted(source, stream.limits.max_line_bytes)
    index = 0
    try:
        for value in _values(ijson.parse(counted, use_float=True)):
            counted.since = 0
            origin = f"{name}[{index}]"
            payload = orjson.dumps(value)
            if len(payload) > stream.limits.max_line_bytes:
                yield _dead(origin, payload, "oversized", f"element of {len(payload):,} bytes",
                            len(payload), stream.position, hashlib.sha256(payload).hexdigest())
            else:
                key = topics.result_key(value) if isinstance(value, dict) else None
                yield FileRecord(payload, key, _headers(origin), stream.position)
            index += 1
    except _Stop as stop:
        yield _dead(f"{name}[{index}]", b"", stop.reason, f"{name}: {stop.detail}",
                    stream.total, stream.position)
    except _READ_ERRORS as exc:
        yield _dead(f"{name}[{index}]", b"", "truncated_input",
                    f"{name}: unreadable after element {index}: {exc}", stream.total,
                    stream.position)
    except (ijson.JSONError, StopIteration, orjson.JSONEncodeError, ValueError) as exc:
        text = (f"{name}: neither JSON Lines nor a readable JSON document after {index} "
                f"element(s): {str(exc)[:300]}")
        if index == 0:
            raise _NotADocument(text) from exc
        yield _dead(f"{name}[{index}]", b"", "invalid_json", text, stream.total,
                    stream.position)


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
            check_readable(path)
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return out


__all__ = ["FileRecord", "ReadLimits", "expand_paths", "file_size", "read_results"]
