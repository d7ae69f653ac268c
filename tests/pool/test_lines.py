"""Line framing and decoding: bounded whatever the input, and strict about what it lets by."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from homekeep.pool.lines import TOO_LONG, LineSplitter, decode, encode, printable

MAX = 64


def split_all(chunks: list[bytes], max_bytes: int = MAX) -> list[bytes | object]:
    splitter = LineSplitter(max_bytes)
    found: list[bytes | object] = []
    for chunk in chunks:
        found.extend(splitter.feed(chunk))
        assert splitter.pending <= max_bytes
    return found


def expected(data: bytes, max_bytes: int = MAX) -> list[bytes | object]:
    complete = data.split(b"\n")[:-1]
    return [line if len(line) <= max_bytes else TOO_LONG for line in complete]


@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), min_size=1, max_size=50))
def test_any_chunking_gives_the_lines_and_marks_the_long_ones(data: bytes, cuts: list[int]) -> None:
    chunks, at = [], 0
    for size in cuts * (len(data) // max(sum(cuts), 1) + 1):
        if at >= len(data):
            break
        chunks.append(data[at : at + size])
        at += size
    assert split_all(chunks) == expected(data)


def test_a_huge_line_costs_at_most_the_bound_and_the_next_line_still_arrives() -> None:
    splitter = LineSplitter(1024)
    found: list[bytes | object] = []
    for _ in range(1000):  # 1 MiB without a newline, in 1 KiB pieces
        found.extend(splitter.feed(b"x" * 1024))
        assert splitter.pending <= 1024
    found.extend(splitter.feed(b'tail of the huge line\n{"type":"ping"}\n'))
    assert found == [TOO_LONG, b'{"type":"ping"}']


def test_decode_takes_only_json_objects_with_a_type() -> None:
    assert decode(b'{"type":"ping"}') == {"type": "ping"}
    assert decode(b'{"type":"ping"}\r') == {"type": "ping"}
    nested = b"[" * 50_000 + b"]" * 50_000
    for bad in (
        b"",
        b"not json",
        b"\xff\xfe\x00binary",
        b"[1, 2]",
        b'"type"',
        b'{"type": 5}',
        b'{"text": "no type"}',
        nested,
        b'{"type": "message", "text": ' + nested + b"}",
        b'{"type": "x", "n": ' + b"9" * 5000 + b"}",  # past Python's int digit limit
    ):
        assert decode(bad) is None


def test_encode_is_one_ascii_line_that_decodes_back() -> None:
    message = {"type": "message", "text": "line\nbreak é \u2028 \x00"}
    data = encode(message)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert data.isascii()
    assert json.loads(data) == message


def test_printable_escapes_what_a_terminal_would_obey() -> None:
    shown = printable("hi\x1b[2J\x07\u202eevil\nnext")
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert "\u202e" not in shown
    assert "\n" not in shown
    assert shown.startswith("hi\\u001b[2J")
    assert printable("x" * 500, limit=10) == "x" * 10 + "…"
