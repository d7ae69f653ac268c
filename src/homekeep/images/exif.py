"""EXIF read strictly and edited in place: the TIFF structure inside an Exif block.

An Exif block is a small TIFF file: directories of 12-byte entries whose values sit inline
or at an offset. Broken and hostile blocks have offsets past the end, directories that
point back at themselves, huge counts and unknown types; ``parse`` refuses every one of
them with ``ExifError``, each read bounded by the block's length, so a caller knows which
blocks it can trust. Edits never re-serialize: taking out the location and turning the
orientation upright keep the block's length, so offsets elsewhere in the file (the index
of a multi-picture JPEG) stay right and every other tag stays as the camera wrote it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EXIF_HEADER = b"Exif\x00\x00"
ORIENTATION = 0x0112
EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
_POINTERS = (EXIF_IFD, GPS_IFD, INTEROP_IFD)
# Bytes per value of each TIFF type: BYTE ASCII SHORT LONG RATIONAL SBYTE UNDEFINED SSHORT
# SLONG SRATIONAL FLOAT DOUBLE IFD.
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
MAX_DIRECTORIES = 16  # IFD0, IFD1 (the thumbnail), Exif, GPS, Interop: real files have 5
MAX_ENTRIES = 4096  # real blocks have a few hundred at most; each costs a little Python
_ENTRY = 12


class ExifError(ValueError):
    """An Exif block that cannot be trusted: truncated, out of bounds, looping, mistyped."""


@dataclass(frozen=True)
class Entry:
    """One directory entry: its tag and type, where it sits, where its value is."""

    tag: int
    kind: int
    count: int
    at: int
    value_at: int
    size: int


@dataclass(frozen=True)
class Directory:
    """One IFD: where it starts, its entries, and the tag that points to it (0: the chain)."""

    at: int
    entries: tuple[Entry, ...]
    via: int

    @property
    def end(self) -> int:
        return self.at + 2 + _ENTRY * len(self.entries) + 4


@dataclass(frozen=True)
class Tiff:
    """A parsed block: its bytes, byte order and every directory reached."""

    data: bytes
    order: str
    directories: tuple[Directory, ...]

    def u16(self, at: int) -> int:
        value: int = struct.unpack_from(self.order + "H", self.data, at)[0]
        return value

    def u32(self, at: int) -> int:
        value: int = struct.unpack_from(self.order + "I", self.data, at)[0]
        return value

    def orientation(self) -> int:
        """The orientation IFD0 states (1 to 8), 1 when it states none or nonsense."""
        for entry in self.directories[0].entries:
            if entry.tag == ORIENTATION and entry.count == 1 and entry.kind in (3, 4):
                value = self.u16(entry.value_at) if entry.kind == 3 else self.u32(entry.value_at)
                return value if 1 <= value <= 8 else 1
        return 1

    def has_location(self) -> bool:
        return any(e.tag == GPS_IFD for d in self.directories for e in d.entries)


def payload(block: bytes) -> bytes:
    """The TIFF part of an Exif block, with or without its ``Exif\\0\\0`` header."""
    return block[len(EXIF_HEADER) :] if block.startswith(EXIF_HEADER) else block


def parse(data: bytes) -> Tiff:
    """Read the TIFF structure of ``data``; raise ExifError for anything out of order."""
    if len(data) < 8:
        raise ExifError(f"a {len(data)}-byte block is too short for a TIFF header")
    if data[:4] == b"II*\x00":
        order = "<"
    elif data[:4] == b"MM\x00*":
        order = ">"
    else:
        raise ExifError("no TIFF header")
    tiff = Tiff(data, order, ())
    found: list[Directory] = []
    queue = [(tiff.u32(4), 0)]
    seen: set[int] = set()
    while queue:
        at, via = queue.pop(0)
        if at in seen:
            raise ExifError(f"directories loop back to byte {at}")
        if len(seen) >= MAX_DIRECTORIES:
            raise ExifError(f"more than {MAX_DIRECTORIES} directories")
        seen.add(at)
        directory = _directory(tiff, at, via)
        found.append(directory)
        if sum(len(d.entries) for d in found) > MAX_ENTRIES:
            raise ExifError(f"more than {MAX_ENTRIES} entries")
        for entry in directory.entries:
            if entry.tag in _POINTERS and via != GPS_IFD:
                if entry.kind not in (4, 13) or entry.count != 1:
                    raise ExifError(f"tag {entry.tag:#x} should point to a directory")
                queue.append((tiff.u32(entry.value_at), entry.tag))
        if via == 0:  # IFD0 and IFD1 form a chain; 0 ends it
            following = tiff.u32(directory.end - 4)
            if following:
                queue.append((following, 0))
    return Tiff(data, order, tuple(found))


def _directory(tiff: Tiff, at: int, via: int) -> Directory:
    data = tiff.data
    if at < 8 or at + 2 > len(data):
        raise ExifError(f"a directory at byte {at} is outside the {len(data)}-byte block")
    count = tiff.u16(at)
    if count > MAX_ENTRIES:
        raise ExifError(f"a directory of {count} entries; at most {MAX_ENTRIES} are read")
    if at + 2 + _ENTRY * count + 4 > len(data):
        raise ExifError(f"a directory of {count} entries runs past the end of the block")
    entries = []
    for i in range(count):
        pos = at + 2 + _ENTRY * i
        tag, kind = tiff.u16(pos), tiff.u16(pos + 2)
        number = tiff.u32(pos + 4)
        if kind not in _SIZES:
            raise ExifError(f"tag {tag:#x} has unknown type {kind}")
        size = _SIZES[kind] * number
        value_at = pos + 8 if size <= 4 else tiff.u32(pos + 8)
        if size > 4 and (value_at < 8 or value_at + size > len(data)):
            raise ExifError(f"the value of tag {tag:#x} ({size} bytes) is outside the block")
        entries.append(Entry(tag, kind, number, pos, value_at, size))
    return Directory(at, tuple(entries), via)


def edit(data: bytes, *, strip_gps: bool, upright: bool) -> bytes:
    """Return ``data`` (a TIFF) without location and/or with orientation 1, same length.

    The location goes whole: the GPS directory and its values are zeroed and the entry
    pointing to it is taken out of its directory (the ones after it move up, leaving 12
    zero bytes), so no reader finds a GPS directory, empty or not.
    """
    tiff = parse(data)
    out = bytearray(data)
    if upright:
        for entry in tiff.directories[0].entries:
            if entry.tag == ORIENTATION and entry.count == 1 and entry.kind in (3, 4):
                fmt = tiff.order + ("H" if entry.kind == 3 else "I")
                struct.pack_into(fmt, out, entry.value_at, 1)
    if strip_gps:
        for directory in tiff.directories:
            if directory.via == GPS_IFD:
                _zero(out, directory.at, directory.end)
                for entry in directory.entries:
                    if entry.value_at != entry.at + 8:
                        _zero(out, entry.value_at, entry.value_at + entry.size)
        for directory in tiff.directories:
            kept = [e for e in directory.entries if e.tag != GPS_IFD]
            if len(kept) < len(directory.entries):
                _rewrite(tiff, out, directory, kept)
    edited = bytes(out)
    check = parse(edited)  # a hostile block whose parts overlap can break under the edit
    if strip_gps and check.has_location():
        raise ExifError("the location could not be taken out")
    if upright and check.orientation() != 1:
        raise ExifError("the orientation could not be reset")
    return edited


def _rewrite(tiff: Tiff, out: bytearray, directory: Directory, kept: list[Entry]) -> None:
    """Write ``directory`` back with only ``kept`` entries, in place, same bytes in all."""
    following = bytes(out[directory.end - 4 : directory.end])
    body = b"".join(out[e.at : e.at + _ENTRY] for e in kept)
    struct.pack_into(tiff.order + "H", out, directory.at, len(kept))
    start = directory.at + 2
    new = body + following
    out[start : start + len(new)] = new
    _zero(out, start + len(new), directory.end)


def _zero(out: bytearray, start: int, end: int) -> None:
    out[start:end] = bytes(end - start)
