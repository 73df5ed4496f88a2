"""Cut JSON arrays into their elements *as text*, so results keep the bytes they came with.

The RIPE Atlas REST API answers with one JSON array of results and the stream sends
``["atlas_result", {...}]``; re-encoding a parsed result would change number text
(``2.7829999999999999`` -> ``2.783``). These helpers return each element's parsed value
together with its exact slice of the original text.
"""

from __future__ import annotations

import json
from typing import Any

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def _skip(text: str, index: int, *, comma: bool = False) -> int:
    while index < len(text) and (text[index] in _WHITESPACE or (comma and text[index] == ",")):
        index += 1
    return index


def split_array(text: str) -> list[tuple[Any, str]]:
    """``[(value, raw_text), ...]`` for every element of the JSON array ``text``."""
    index = _skip(text, 0)
    if index >= len(text) or text[index] != "[":
        raise ValueError("not a JSON array")
    index = _skip(text, index + 1)
    out: list[tuple[Any, str]] = []
    while index < len(text) and text[index] != "]":
        value, end = _DECODER.raw_decode(text, index)
        out.append((value, text[index:end]))
        index = _skip(text, end)
        if index < len(text) and text[index] == ",":
            index = _skip(text, index + 1)
        elif index < len(text) and text[index] != "]":
            raise ValueError(f"expected ',' or ']' at offset {index}")
    if index >= len(text):
        raise ValueError("unterminated JSON array")
    return out
