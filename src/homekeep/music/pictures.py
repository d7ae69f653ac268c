"""Embedded pictures of each tag system: (picture type, mime, description, bytes)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from homekeep.music.artwork import sniff_mime

FRONT_COVER = 3
_APE_PICTURE_TYPES = {"cover art (front)": 3, "cover art (back)": 4, "cover art (artist)": 8}


def embedded(audio: Any, system: str, fields: dict[str, Any]) -> list[tuple[int, str, str, bytes]]:
    """Return every embedded picture as (type, mime, description, bytes)."""
    found: list[tuple[int, str, str, bytes]] = []
    for picture in getattr(audio, "pictures", None) or ():  # FLAC PICTURE blocks
        found.append((int(picture.type), picture.mime, picture.desc, bytes(picture.data)))
    if system == "id3":
        for frame in audio.tags.getall("APIC"):
            found.append((int(frame.type), frame.mime, frame.desc, bytes(frame.data)))
    elif system == "mp4":
        for n, cover in enumerate(fields.get("covr") or ()):  # untyped: the first is the front
            found.append((FRONT_COVER if n == 0 else 0, sniff_mime(bytes(cover)), "", bytes(cover)))
    elif system == "ape":
        for key, value in fields.items():
            ptype = _APE_PICTURE_TYPES.get(key)
            if ptype is None or getattr(value, "kind", None) != 1:  # 1: binary item
                continue
            filename, _, data = bytes(value.value).partition(b"\x00")
            found.append((ptype, sniff_mime(data), filename.decode("utf-8", "replace"), data))
    elif system == "asf":
        for value in fields.get("WM/Picture") or ():
            parsed = asf_picture(bytes(value.value))
            if parsed is not None:
                found.append(parsed)
    elif system == "vorbis":
        found.extend(_vorbis_pictures(fields))
    return found


def _vorbis_pictures(comments: dict[str, Any]) -> list[tuple[int, str, str, bytes]]:
    from mutagen import flac

    parse: Any = flac.Picture  # mutagen's classes are not annotated
    found: list[tuple[int, str, str, bytes]] = []
    for encoded in comments.get("metadata_block_picture") or ():
        try:
            picture = parse(base64.b64decode(encoded))
        except Exception:  # noqa: S112 - a broken block is skipped, the rest still count
            continue
        found.append((int(picture.type), picture.mime, picture.desc, bytes(picture.data)))
    for encoded in comments.get("coverart") or ():  # the old unofficial field
        try:
            data = base64.b64decode(encoded)
        except ValueError:
            continue
        found.append((FRONT_COVER, sniff_mime(data), "", data))
    return found


def asf_picture(blob: bytes) -> tuple[int, str, str, bytes] | None:
    """Parse WM/Picture: type byte, data length, UTF-16 mime and description, data."""
    try:
        ptype, length = struct.unpack_from("<BI", blob)
        pos = 5
        strings = []
        for _ in range(2):
            end = pos
            while blob[end : end + 2] != b"\x00\x00":
                end += 2
                if end >= len(blob):
                    return None
            strings.append(blob[pos:end].decode("utf-16-le", "replace"))
            pos = end + 2
        return ptype, strings[0], strings[1], blob[pos : pos + length]
    except (struct.error, IndexError):
        return None
