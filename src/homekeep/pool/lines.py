"""Newline-delimited JSON: bounded line splitting, strict decoding, safe console text.

Every byte a client sends passes through ``LineSplitter`` before anything parses it, so a
line past the bound costs at most the bound in memory, whatever its length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any


class TooLong:
    """Marks a line that passed the bound; its bytes were dropped."""


TOO_LONG = TooLong()
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class LineSplitter:
    """Split a byte stream into lines of at most ``max_bytes`` (newline excluded).

    A longer line yields ``TOO_LONG`` once and its bytes are skipped up to its newline.
    One splitter belongs to one connection and is used from one thread.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes held for a line not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[bytes | TooLong]:
        """Yield the complete lines in ``data`` (with what came before it)."""
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            start = len(data) if end < 0 else end + 1
            if self._skipping:
                if end >= 0:
                    self._skipping = False
                continue
            if len(self._buffer) + len(piece) > self.max_bytes:
                self._buffer.clear()
                self._skipping = end < 0
                yield TOO_LONG
                continue
            if end < 0:
                self._buffer += piece
                continue
            if self._buffer:
                self._buffer += piece
                line = bytes(self._buffer)
                self._buffer.clear()
            else:
                line = piece
            yield line


def decode(line: bytes) -> dict[str, Any] | None:
    """The JSON object on ``line`` with a string ``type``, or None for anything else."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    return value


def encode(message: dict[str, Any]) -> bytes:
    """One JSON line, compact, ASCII-only so no byte sequence is ambiguous on the wire."""
    return json.dumps(message, separators=(",", ":")).encode("ascii") + b"\n"


def printable(text: str, limit: int = 300) -> str:
    """``text`` safe for a terminal or a log: control and bidi characters escaped, cut."""
    cut = text[:limit]
    shown = _CONTROL.sub(lambda m: f"\\u{ord(m[0]):04x}", cut)
    return shown + ("…" if len(text) > limit else "")
