"""Location privacy: take out EXIF GPS and XMP locations, turn images upright by EXIF.

Metadata is edited where it lies. An Exif block loses its GPS directory in place (same
length, every other tag kept, see ``exif``); one that cannot be read safely is removed
whole, since a location may hide in what we cannot read. An XMP packet that mentions GPS,
and a PNG's ImageMagick copy of EXIF ("Raw profile type exif"), are removed whole. In a
JPEG a removed segment becomes a comment of zeros of the same length, so the offsets of a
multi-picture file (MPO, an HDR gain map) stay right and every picture in it is cleaned;
the compressed pixels are never touched.

Only an image turned upright is re-encoded: a JPEG with its own quantisation tables, a
still PNG or lossless WebP losslessly. A lossy WebP, an animation and AVIF keep their
orientation (re-encoding would cost quality; browsers apply it). If Pillow cannot
re-encode an image it decoded, the image is kept as it is, orientation tag included.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from collections.abc import Callable

from PIL import Image, JpegImagePlugin

from homekeep.core.errors import InvalidInput
from homekeep.images import chunks, exif
from homekeep.images.chunks import Block
from homekeep.images.formats import FORMATS, Format

log = logging.getLogger(__name__)

_APP1, _COM = b"\xe1", b"\xfe"
_XMP_HEADERS = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
# XMP may be UTF-8, UTF-16 or UTF-32: look for "GPS" (exif:GPSLatitude...) in each.
_GPS_MARKS = tuple("GPS".encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be"))
_RAW_EXIF = (b"Raw profile type exif", b"Raw profile type APP1")
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def locates(xmp: bytes) -> bool:
    """Return True if an XMP packet may hold a location."""
    return any(mark in xmp for mark in _GPS_MARKS)


def read(block: bytes | None) -> exif.Tiff | None:
    """Parse an Exif block (with or without its header); None if absent or untrustworthy."""
    if not block:
        return None
    try:
        return exif.parse(exif.payload(block))
    except exif.ExifError:
        return None


def upright(im: Image.Image) -> Image.Image:
    """Return ``im`` turned by the orientation in its EXIF (as browsers show it)."""
    tiff = read(im.info.get("exif"))
    orientation = tiff.orientation() if tiff is not None else 1
    return im.transpose(_TRANSPOSE[orientation]) if orientation != 1 else im


def clean(data: bytes, fmt: Format, *, strip_gps: bool, apply_orientation: bool) -> bytes:
    """Return ``data`` without location metadata and upright, or unchanged if nothing to do."""
    if not (strip_gps or apply_orientation):
        return data
    cleaned = _CLEANERS[fmt.mime](data, strip_gps, apply_orientation)
    return data if cleaned == data else cleaned


def _without_location(tiff: bytes) -> bytes | None:
    """The TIFF without its GPS directory (same length), or None to remove the block."""
    try:
        return exif.edit(tiff, strip_gps=True, upright=False)
    except exif.ExifError:
        return None


def _rotated(data: bytes, fmt: Format, tiff: bytes, **options: object) -> bytes:
    """Re-encode ``data`` upright with ``tiff`` (orientation reset) as its EXIF, or keep it.

    Pillow can fail to write what it read (a quantisation table or an ICC profile it does
    not take, an unusual mode): the image is then stored as it is, tag and all.
    """
    try:
        fixed = exif.edit(tiff, strip_gps=False, upright=True)
        with Image.open(io.BytesIO(data), formats=[fmt.pil]) as im:
            orientation = exif.parse(tiff).orientation()
            turned = im.transpose(_TRANSPOSE[orientation])
            if isinstance(im, JpegImagePlugin.JpegImageFile):
                options["qtables"] = im.quantization
                options["subsampling"] = JpegImagePlugin.get_sampling(im)
            if icc := im.info.get("icc_profile"):
                options["icc_profile"] = icc
            out = io.BytesIO()
            turned.save(out, fmt.pil, exif=exif.EXIF_HEADER + fixed, **options)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.info(
            "kept a %s with its orientation tag: Pillow cannot re-encode it: %s", fmt.mime, exc
        )
        return data
    return out.getvalue()


def _first_tiff(data: bytes, blocks: list[Block], kind: bytes) -> bytes | None:
    """The TIFF of the first readable Exif block of ``kind``, if it needs turning upright."""
    for block in blocks:
        if block.kind == b"\xda":  # a JPEG's start of scan: the first picture's headers end
            break
        if block.kind == kind:
            body = data[block.body : block.stop]
            if kind == _APP1 and not body.startswith(exif.EXIF_HEADER):
                continue
            tiff = read(body)
            return exif.payload(body) if tiff is not None and tiff.orientation() != 1 else None
    return None


def _clean_jpeg(data: bytes, strip_gps: bool, orient: bool) -> bytes:
    blocks, _ = chunks.jpeg(data)
    out = bytearray(data)
    for block in blocks if strip_gps else ():
        body = data[block.body : block.stop]
        if block.kind != _APP1:
            continue
        if body.startswith(exif.EXIF_HEADER):
            fixed = _without_location(body[len(exif.EXIF_HEADER) :])
            if fixed is None:
                _blank(out, block)
            else:
                out[block.body + len(exif.EXIF_HEADER) : block.stop] = fixed
        elif body.startswith(_XMP_HEADERS) and locates(body):
            _blank(out, block)
    cleaned = bytes(out)
    tiff = _first_tiff(cleaned, blocks, _APP1) if orient else None
    if tiff is not None:
        return _rotated(cleaned, _JPEG, tiff)
    return cleaned


def _blank(out: bytearray, block: Block) -> None:
    """Turn a JPEG segment into a comment of zeros: same length, nothing in it."""
    out[block.start + 1 : block.start + 2] = _COM
    out[block.body : block.end] = bytes(block.end - block.body)


def _clean_png(data: bytes, strip_gps: bool, orient: bool) -> bytes:
    blocks, _ = chunks.png(data)
    parts = [data[:8]]
    for block in blocks:
        body = data[block.body : block.stop]
        chunk: bytes | None = data[block.start : block.end]
        if strip_gps and block.kind == b"eXIf":
            header = len(exif.EXIF_HEADER) if body.startswith(exif.EXIF_HEADER) else 0
            fixed = _without_location(body[header:])
            chunk = None if fixed is None else _png_chunk(b"eXIf", body[:header] + fixed)
        elif strip_gps and block.kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword, _, text = body.partition(b"\x00")
            compressed = block.kind == b"zTXt" or (block.kind == b"iTXt" and text[:1] != b"\x00")
            if keyword in _RAW_EXIF or (
                keyword == b"XML:com.adobe.xmp" and (compressed or locates(text))
            ):
                chunk = None  # compressed XMP is not inflated to look: it goes
        if chunk is not None:
            parts.append(chunk)
    cleaned = b"".join(parts)
    still = not any(block.kind == b"acTL" for block in blocks)
    tiff = _first_tiff(cleaned, chunks.png(cleaned)[0], b"eXIf") if orient and still else None
    if tiff is not None:
        return _rotated(cleaned, _PNG, tiff)
    return cleaned


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _clean_webp(data: bytes, strip_gps: bool, orient: bool) -> bytes:
    blocks, _ = chunks.riff(data)
    parts: list[bytearray] = []
    dropped = 0  # VP8X flags of the chunks taken out: EXIF 0x08, XMP 0x04
    for block in blocks:
        body = data[block.body : block.stop]
        chunk = bytearray(data[block.start : block.end])
        if strip_gps and block.kind == b"EXIF":
            header = len(exif.EXIF_HEADER) if body.startswith(exif.EXIF_HEADER) else 0
            fixed = _without_location(body[header:])
            if fixed is None:
                dropped |= 0x08
                continue
            chunk[8 + header : 8 + len(body)] = fixed
        elif strip_gps and block.kind == b"XMP " and locates(body):
            dropped |= 0x04
            continue
        parts.append(chunk)
    kinds = {bytes(part[:4]) for part in parts}
    gone = dropped & ((0x08 if b"EXIF" not in kinds else 0) | (0x04 if b"XMP " not in kinds else 0))
    for part in parts:
        if part[:4] == b"VP8X":
            part[8] &= ~gone & 0xFF
    body = b"WEBP" + b"".join(parts)
    cleaned = b"RIFF" + len(body).to_bytes(4, "little") + body
    lossless = b"VP8L" in kinds and b"ANIM" not in kinds
    tiff = _first_tiff(cleaned, chunks.riff(cleaned)[0], b"EXIF") if orient and lossless else None
    if tiff is not None:
        return _rotated(cleaned, _WEBP, tiff, lossless=True)
    return cleaned


def _clean_gif(data: bytes, strip_gps: bool, orient: bool) -> bytes:
    """A GIF has no EXIF; an XMP application extension that mentions GPS is removed."""
    if not strip_gps:
        return data
    blocks, end = chunks.gif(data)
    kept = [data[: blocks[0].start if blocks else end - 1]]
    for block in blocks:
        xmp = block.kind == b"!\xff" and data[block.body + 1 : block.body + 12] == b"XMP DataXMP"
        if not (xmp and locates(data[block.body : block.stop])):
            kept.append(data[block.start : block.end])
    return b"".join(kept) + data[end - 1 : end]


def _clean_avif(data: bytes, strip_gps: bool, orient: bool) -> bytes:
    """Take the location out of an AVIF's Exif and XMP items where they lie.

    AVIF states its orientation in boxes browsers apply, so nothing is turned. The items
    are found as the bytes Pillow (libavif) read from them; an item that is not stored as
    one run of bytes cannot be edited in place, and such an image is refused.
    """
    if not strip_gps:
        return data
    with Image.open(io.BytesIO(data), formats=["AVIF"]) as im:
        block, xmp = im.info.get("exif"), im.info.get("xmp")
    out = data
    tiff = read(block)
    if block and (tiff is None or tiff.has_location()):
        payload = exif.payload(block)
        fixed = _without_location(payload)
        if fixed is None:
            raise InvalidInput("the AVIF's EXIF is damaged; remove it (exiftool -exif:all=)")
        out = _replace_all(out, payload, fixed)
    if xmp and locates(xmp):
        out = _replace_all(out, xmp, bytes(len(xmp)))
    return out


def _replace_all(data: bytes, old: bytes, new: bytes) -> bytes:
    if old not in data:
        raise InvalidInput(
            "cannot take the location out of this AVIF (its metadata is not stored as one "
            "piece); remove it before uploading (exiftool -gps:all= -xmp:all=)"
        )
    return data.replace(old, new)


_JPEG, _PNG, _WEBP = (FORMATS[f"image/{name}"] for name in ("jpeg", "png", "webp"))
_CLEANERS: dict[str, Callable[[bytes, bool, bool], bytes]] = {
    "image/jpeg": _clean_jpeg,
    "image/png": _clean_png,
    "image/webp": _clean_webp,
    "image/gif": _clean_gif,
    "image/avif": _clean_avif,
}
