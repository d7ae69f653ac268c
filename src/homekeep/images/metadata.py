"""Location privacy: drop EXIF GPS and apply EXIF orientation before an image is stored.

Only what must change is rewritten. A JPEG's GPS is removed by rewriting its Exif segment
alone (the pixels are not touched); only a rotated JPEG is re-encoded, with its own
quantisation tables. PNG and WebP carry EXIF in one chunk, which is dropped whole when it
holds a location; a still PNG or lossless WebP with an orientation is re-encoded upright,
losslessly.
"""

from __future__ import annotations

import io
import struct

from PIL import ExifTags, Image, ImageOps, JpegImagePlugin

from homekeep.images.formats import Format

_EXIF_HEAD = b"Exif\x00\x00"
_GPS = ExifTags.IFD.GPSInfo
_ORIENTATION = ExifTags.Base.Orientation


def _exif(payload: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.load(payload)
    return exif


def clean(data: bytes, fmt: Format, *, strip_gps: bool, apply_orientation: bool) -> bytes:
    """Return ``data`` without location metadata and upright, or unchanged if nothing to do."""
    if fmt.mime == "image/jpeg":
        return _clean_jpeg(data, strip_gps=strip_gps, apply_orientation=apply_orientation)
    if apply_orientation and fmt.mime in ("image/png", "image/webp"):
        rotated = _rotate_lossless(data, fmt, strip_gps=strip_gps)
        if rotated is not None:
            return rotated
    if not strip_gps:
        return data
    if fmt.mime == "image/png":
        return _clean_png(data)
    if fmt.mime == "image/webp":
        return _clean_webp(data)
    return data


def _jpeg_exif_segment(data: bytes) -> tuple[int, int] | None:
    """Return (start, end) of the APP1 Exif segment, searching the headers before SOS."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: no more headers
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xE1 and data[pos + 4 : pos + 10] == _EXIF_HEAD:
            return pos, pos + 2 + length
        pos += 2 + length
    return None


def _clean_jpeg(data: bytes, *, strip_gps: bool, apply_orientation: bool) -> bytes:
    segment = _jpeg_exif_segment(data)
    if segment is None:
        return data
    start, end = segment
    exif = _exif(data[start + 4 : end])
    orientation = exif.get(_ORIENTATION, 1)
    if apply_orientation and orientation in range(2, 9):
        return _rotate_jpeg(data, strip_gps=strip_gps)
    if not (strip_gps and _GPS in exif):
        return data
    del exif[_GPS]
    payload = exif.tobytes()
    if len(payload) + 2 > 0xFFFF:
        return data[:start] + data[end:]
    return data[:start] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[end:]


def _rotate_jpeg(data: bytes, *, strip_gps: bool) -> bytes:
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as im:
        assert isinstance(im, JpegImagePlugin.JpegImageFile)
        upright = ImageOps.exif_transpose(im)
        exif = upright.getexif()
        exif.pop(_ORIENTATION, None)
        if strip_gps:
            exif.pop(_GPS, None)
        extra = {}
        if icc := im.info.get("icc_profile"):
            extra["icc_profile"] = icc
        out = io.BytesIO()
        upright.save(
            out,
            "JPEG",
            qtables=im.quantization,
            subsampling=JpegImagePlugin.get_sampling(im),
            exif=exif.tobytes(),
            **extra,
        )
    return out.getvalue()


def _rotate_lossless(data: bytes, fmt: Format, *, strip_gps: bool) -> bytes | None:
    """Rotate a still PNG, or a lossless WebP, by its EXIF orientation; None if not needed.

    Lossy WebP is left as it is: re-encoding would cost quality, and browsers apply the
    orientation tag themselves.
    """
    with Image.open(io.BytesIO(data), formats=[fmt.pil]) as im:
        exif = im.getexif()
        if exif.get(_ORIENTATION, 1) not in range(2, 9) or getattr(im, "n_frames", 1) > 1:
            return None
        lossless = fmt.mime == "image/png" or b"VP8L" in data[12:64]
        if not lossless:
            return None
        upright = ImageOps.exif_transpose(im)
        exif = upright.getexif()
        exif.pop(_ORIENTATION, None)
        if strip_gps:
            exif.pop(_GPS, None)
        options: dict[str, object] = {"exif": exif.tobytes()}
        if icc := im.info.get("icc_profile"):
            options["icc_profile"] = icc
        if fmt.mime == "image/webp":
            options["lossless"] = True
        out = io.BytesIO()
        upright.save(out, fmt.pil, **options)
    return out.getvalue()


def _clean_png(data: bytes) -> bytes:
    pos, out = 8, [data[:8]]
    changed = False
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk_end = pos + 12 + length
        if kind == b"eXIf" and _GPS in _exif(data[pos + 8 : pos + 8 + length]):
            changed = True
        else:
            out.append(data[pos:chunk_end])
        pos = chunk_end
    return b"".join(out) if changed else data


def _clean_webp(data: bytes) -> bytes:
    pos, out = 12, []
    changed = False
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        chunk_end = pos + 8 + length + (length & 1)
        payload = data[pos + 8 : pos + 8 + length]
        if kind == b"EXIF" and _GPS in _exif(payload):
            changed = True
        else:
            out.append(bytearray(data[pos:chunk_end]))
        pos = chunk_end
    if not changed:
        return data
    for chunk in out:
        if chunk[:4] == b"VP8X":
            chunk[8] &= ~0x08 & 0xFF  # the "has EXIF" flag
    body = b"WEBP" + b"".join(out)
    return b"RIFF" + len(body).to_bytes(4, "little") + body
