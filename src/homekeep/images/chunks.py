"""The blocks each format is built of, walked with every read bounded by the data.

Two uses: where an image really ends (bytes after it are refused: no HTML or ZIP
polyglots), and which blocks hold metadata to edit (EXIF, XMP). A walker returns the
blocks it read and the offset where the image ends, which is past the data when the file
stops mid-image; it raises ValueError for a block it cannot read. Every walk is linear in
the data and stops after ``MAX_BLOCKS``: a file of millions of empty blocks costs no more
than a real one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BLOCKS = 65_536
_SOI = b"\xff\xd8\xff"
_EOI, _SOS = 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0-7 carry no length
# In entropy-coded data 0xFF is followed by 0x00 (a stuffed byte), a restart marker, or
# more 0xFF fill: anything else is the next marker.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


@dataclass(frozen=True)
class Block:
    """One block: its kind, its first byte, its payload's bounds, and its end.

    ``kind`` is the chunk type of PNG and WebP, the marker byte of JPEG, and for GIF
    ``!`` and the extension's label, or ``,`` for an image.
    """

    kind: bytes
    start: int
    body: int
    stop: int
    end: int


Walk = tuple[list[Block], int]


def png(data: bytes) -> Walk:
    """The chunks of a PNG up to IEND."""
    blocks: list[Block] = []
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if length > 0x7FFFFFFF:
            raise ValueError(f"a chunk length of {length} at byte {pos}")
        kind = data[pos + 4 : pos + 8]
        body = pos + 8
        block = Block(kind, pos, body, body + length, body + length + 4)
        if block.end > len(data):
            break
        _add(blocks, block)
        pos = block.end
        if kind == b"IEND":
            return blocks, pos
    return blocks, len(data) + 1


def jpeg(data: bytes) -> Walk:
    """The marker segments of a JPEG, and of the images that follow it (MPO, gain maps).

    A next image counts only when it starts at the previous one's EOI (after zero
    padding), as in a camera's multi-picture file or a phone's HDR gain map. Junk where a
    marker should be is skipped up to the next 0xFF, as libjpeg and Pillow do.
    """
    blocks: list[Block] = []
    pos = end = markers = 0
    while data[pos : pos + 3] == _SOI:
        pos += 2
        while True:
            markers += 1
            if markers > MAX_BLOCKS:
                raise ValueError(f"more than {MAX_BLOCKS} markers")
            pos = data.find(b"\xff", pos)  # junk before a marker is skipped
            if pos < 0:
                return blocks, len(data) + 1
            start = pos
            while pos < len(data) and data[pos] == 0xFF:  # fill bytes before a marker
                pos += 1
            if pos >= len(data):
                return blocks, len(data) + 1
            marker = data[pos]
            pos += 1
            if marker == _EOI:
                break
            if marker in _STANDALONE or marker == 0x00:  # 0x00: a stuffed byte, junk here
                continue
            if marker == 0xD8:
                raise ValueError(f"a second start of image at byte {start}, inside an image")
            if pos + 2 > len(data):
                return blocks, len(data) + 1
            length = int.from_bytes(data[pos : pos + 2], "big")
            if length < 2:
                raise ValueError(f"a segment length of {length} at byte {start}")
            block = Block(bytes([marker]), start, pos + 2, pos + length, pos + length)
            if block.end > len(data):
                return blocks, len(data) + 1
            _add(blocks, block)
            pos = block.end
            if marker == _SOS:
                found = _MARKER.search(data, pos)
                pos = found.start() if found else len(data)
        end = pos
        while pos < len(data) and data[pos] == 0:
            pos += 1
    return blocks, end


def gif(data: bytes) -> Walk:
    """The extensions and images of a GIF up to its trailer."""
    blocks: list[Block] = []
    if len(data) < 13:
        return blocks, len(data) + 1
    pos = 13 + _color_table(data[10])
    while pos < len(data):
        start = pos
        introducer = data[pos]
        if introducer == 0x3B:
            return blocks, pos + 1
        if introducer == 0x21:
            kind = data[pos : pos + 2]
            pos += 2
        elif introducer == 0x2C:
            if pos + 10 > len(data):
                break
            kind = b","
            pos += 10 + _color_table(data[pos + 9]) + 1  # descriptor, table, LZW code size
        else:
            raise ValueError(f"unknown GIF block {introducer:#04x} at byte {pos}")
        body = pos
        while pos < len(data) and data[pos]:  # data sub-blocks, each at most 255 bytes
            pos += 1 + data[pos]
        pos += 1
        if pos > len(data):
            break
        _add(blocks, Block(kind, start, body, pos - 1, pos))
    return blocks, len(data) + 1


def _color_table(flags: int) -> int:
    return 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0


def riff(data: bytes) -> Walk:
    """The chunks of a WebP (a RIFF file), which ends where its RIFF size says."""
    end = 8 + int.from_bytes(data[4:8], "little")
    blocks: list[Block] = []
    pos = 12
    while pos + 8 <= min(end, len(data)):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        block = Block(data[pos : pos + 4], pos, body, body + size, body + size + (size & 1))
        if block.end > end:
            raise ValueError(f"chunk {block.kind!r} at byte {pos} runs past the RIFF end")
        _add(blocks, block)
        pos = block.end
    return blocks, end


def bmff(data: bytes) -> Walk:
    """The top-level boxes of an AVIF (ISO base media file format)."""
    blocks: list[Block] = []
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        head = 8
        if size == 1:
            size, head = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < head:
            raise ValueError(f"a box at byte {pos} is smaller than its header")
        _add(blocks, Block(data[pos + 4 : pos + 8], pos, pos + head, pos + size, pos + size))
        pos += size
    return blocks, pos if pos >= len(data) else len(data) + 1


def _add(blocks: list[Block], block: Block) -> None:
    if len(blocks) >= MAX_BLOCKS:
        raise ValueError(f"more than {MAX_BLOCKS} blocks")
    blocks.append(block)


WALKS = {
    "image/png": png,
    "image/jpeg": jpeg,
    "image/gif": gif,
    "image/webp": riff,
    "image/avif": bmff,
}
