"""Real images, and the pieces the broken-image corpus is made of.

The images are real: ffmpeg encodes its lavfi test source (testsrc2) in every accepted
format, still and animated. The pieces are metadata as cameras and editors write it (EXIF
laid out by hand so each field can be broken, ICC profiles, XMP packets) and the ways to
put a block into each format. Nothing is random: the same ffmpeg gives the same bytes.
"""

from __future__ import annotations

import functools
import io
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageCms

from tests.images import samples

MAX_FRAMES = 100  # the corpus server's [images] max_frames: a 101-frame case goes past it
GPS_XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="51,30.2N" '
    b'exif:GPSLongitude="0,7.6W"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)
ORIENTED_XMP = GPS_XMP.replace(b'exif:GPSLatitude="51,30.2N" exif:GPSLongitude="0,7.6W"', b"")
ORIENTED_XMP = ORIENTED_XMP.replace(b"xmlns:exif=", b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" ')
ORIENTED_XMP = ORIENTED_XMP.replace(b'"http://ns.adobe.com/exif/1.0/"', b'tiff:Orientation="6"')
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8)
    )
    + b"]><x:xmpmeta>&i;</x:xmpmeta>"
)


# --- real images -------------------------------------------------------------------------


def ffmpeg(encode: list[str], *, frames: int = 1, size: str = "96x64", suffix: str) -> bytes:
    """Frames of ffmpeg's testsrc2, encoded as ``encode`` says (bit-exact, one thread)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"out.{suffix}"
        source = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=5", "-frames:v", str(frames)]
        exact = ["-threads", "1", "-fflags", "+bitexact", "-flags", "+bitexact"]
        subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", *source, *exact, *encode, str(out)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return out.read_bytes()


@functools.cache
def bases() -> dict[str, bytes]:
    """The real images every case starts from, by name."""
    made = {
        "png": ffmpeg(["-c:v", "png", "-f", "image2"], suffix="png"),
        "apng": ffmpeg(["-plays", "0", "-f", "apng"], frames=3, suffix="apng"),
        "jpeg": ffmpeg(["-c:v", "mjpeg", "-q:v", "4", "-f", "image2"], suffix="jpg"),
        "gif": ffmpeg(["-f", "gif"], frames=3, suffix="gif"),
        "webp": ffmpeg(["-c:v", "libwebp", "-f", "webp"], suffix="webp"),
        "webp-lossless": ffmpeg(["-c:v", "libwebp", "-lossless", "1", "-f", "webp"], suffix="webp"),
        "webp-anim": ffmpeg(
            ["-c:v", "libwebp_anim", "-loop", "0", "-f", "webp"], frames=3, suffix="webp"
        ),
        "png-gray16": ffmpeg(["-pix_fmt", "gray16be", "-c:v", "png", "-f", "image2"], suffix="png"),
        "png-palette": ffmpeg(["-pix_fmt", "pal8", "-c:v", "png", "-f", "image2"], suffix="png"),
        "png-la": ffmpeg(["-pix_fmt", "ya8", "-c:v", "png", "-f", "image2"], suffix="png"),
        "png-rgba64": ffmpeg(["-pix_fmt", "rgba64be", "-c:v", "png", "-f", "image2"], suffix="png"),
        "apng-long": ffmpeg(
            ["-plays", "0", "-f", "apng"], frames=MAX_FRAMES + 1, size="16x16", suffix="apng"
        ),
        "gif-long": ffmpeg(["-f", "gif"], frames=MAX_FRAMES + 1, size="16x16", suffix="gif"),
        "webp-long": ffmpeg(
            ["-c:v", "libwebp_anim", "-f", "webp"],
            frames=MAX_FRAMES + 1,
            size="48x48",  # smaller, some frames repeat and libwebp merges them
            suffix="webp",
        ),
    }
    if samples.HAS_AVIF:
        made["avif"] = ffmpeg(
            ["-c:v", "libaom-av1", "-cpu-used", "8", "-still-picture", "1", "-f", "avif"],
            suffix="avif",
        )
    return made


# --- EXIF: a camera's block, laid out by hand so each part can be broken ------------------


def camera_exif(order: str = "<", orientation: int = 6) -> tuple[bytes, dict[str, int]]:
    """A TIFF as a camera writes it (IFD0, Exif IFD, GPS IFD, IFD1) and where each part is.

    The positions are keyed "ifd0", "gps"... for a directory and "ifd0:0x112"... for an
    entry, so a case can change one field.
    """

    def p(fmt: str, *values: int) -> bytes:
        return struct.pack(order + fmt, *values)

    def text(s: str) -> tuple[int, int, bytes]:
        return 2, len(s) + 1, s.encode() + b"\x00"

    def rationals(*pairs: tuple[int, int]) -> tuple[int, int, bytes]:
        return 5, len(pairs), b"".join(p("II", a, b) for a, b in pairs)

    dirs: dict[str, list[tuple[int, int, int, bytes]]] = {
        "ifd0": [
            (0x010F, *text("HomeCam")),
            (0x0110, *text("HC-1 Pocket")),
            (0x0112, 3, 1, p("H", orientation)),
            (0x8769, 4, 1, b""),
            (0x8825, 4, 1, b""),
        ],
        "exif": [(0x9003, *text("2024:05:01 12:00:00")), (0x829A, *rationals((1, 250)))],
        "gps": [
            (1, *text("N")),
            (2, *rationals((51, 1), (30, 1), (1250, 100))),
            (3, *text("W")),
            (4, *rationals((0, 1), (7, 1), (3900, 100))),
        ],
        "ifd1": [(0x0103, 3, 1, p("H", 6))],
    }
    at: dict[str, int] = {}
    pos = 8
    for name, fields in dirs.items():
        at[name] = pos
        pos += 2 + 12 * len(fields) + 4 + sum(len(v) for *_, v in fields if len(v) > 4)
    out = bytearray((b"II*\x00" if order == "<" else b"MM\x00*") + p("I", at["ifd0"]))
    for name, fields in dirs.items():
        out += p("H", len(fields))
        values = bytearray()
        spill = at[name] + 2 + 12 * len(fields) + 4
        for tag, kind, count, value in fields:
            at[f"{name}:{tag:#x}"] = len(out)
            if tag in (0x8769, 0x8825):
                value = p("I", at["exif" if tag == 0x8769 else "gps"])
            if len(value) > 4:
                out += p("HHII", tag, kind, count, spill + len(values))
                values += value
            else:
                out += p("HHI", tag, kind, count) + value.ljust(4, b"\x00")
        at[f"{name}:next"] = len(out)
        out += p("I", at["ifd1"] if name == "ifd0" else 0) + values
    return bytes(out), at


def put_int(data: bytes, order: str, at: int, fmt: str, value: int) -> bytes:
    """``data`` with one integer packed at ``at`` in byte order ``order``."""
    out = bytearray(data)
    struct.pack_into(order + fmt, out, at, value)
    return bytes(out)


def _chain(order: str, length: int) -> bytes:
    """A TIFF of ``length`` one-entry directories, each pointing to the next."""
    out = bytearray((b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8))
    for i in range(length):
        following = len(out) + 18 if i < length - 1 else 0
        out += struct.pack(order + "HHHII", 1, 0x0131, 2, 4, 0x00616263) + struct.pack(
            order + "I", following
        )
    return bytes(out)


def _wide(order: str, entries: int) -> bytes:
    """A TIFF whose IFD0 has ``entries`` entries, all real."""
    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "IH", 8, entries)
    body = b"".join(struct.pack(order + "HHII", 0x9000 + i % 4096, 4, 1, i) for i in range(entries))
    return head + body + struct.pack(order + "I", 0)


def exif_cases(order: str) -> Iterator[tuple[str, bytes]]:
    """(name, TIFF) for a good camera block and every way this corpus breaks one."""
    good, at = camera_exif(order)
    end = len(good)

    def put(where: str, offset: int, fmt: str, value: int) -> bytes:
        return put_int(good, order, at[where] + offset, fmt, value)

    yield "gps-and-orientation", good
    yield "upright-gps", camera_exif(order, orientation=1)[0]
    for cut in (0, 6, 9, at["ifd0"] + 20, at["exif"], at["gps"] + 10, at["gps:0x2"], end - 1):
        yield f"cut-at-{cut}", good[:cut]
    yield "not-tiff", b"JUNK" + good[4:]
    yield "zeros", bytes(end)
    yield "ifd0-at-0", put("ifd0", -at["ifd0"] + 4, "I", 0)
    yield "ifd0-past-end", put("ifd0", -at["ifd0"] + 4, "I", end + 100)
    yield "ifd0-at-max", put("ifd0", -at["ifd0"] + 4, "I", 0xFFFFFFFF)
    yield "ifd0-inside-header", put("ifd0", -at["ifd0"] + 4, "I", 2)
    yield "ifd0-next-is-ifd0", put("ifd0:next", 0, "I", at["ifd0"])
    yield "ifd1-next-is-ifd0", put("ifd1:next", 0, "I", at["ifd0"])
    yield "ifd1-next-past-end", put("ifd1:next", 0, "I", end + 4)
    yield "gps-is-ifd0", put("ifd0:0x8825", 8, "I", at["ifd0"])
    yield "exif-is-gps", put("ifd0:0x8769", 8, "I", at["gps"])
    yield "gps-past-end", put("ifd0:0x8825", 8, "I", 0x7FFFFFF0)
    yield "gps-mid-entry", put("ifd0:0x8825", 8, "I", at["ifd0"] + 5)
    yield "gps-at-last-byte", put("ifd0:0x8825", 8, "I", end - 1)
    yield "ifd0-count-max", put("ifd0", 0, "H", 0xFFFF)
    yield "gps-count-max", put("gps", 0, "H", 0xFFFF)
    yield "gps-count-zero", put("gps", 0, "H", 0)
    yield "make-count-huge", put("ifd0:0x10f", 4, "I", 0x7FFFFFFF)
    yield "latitude-count-huge", put("gps:0x2", 4, "I", 0x20000000)
    yield "latitude-count-zero", put("gps:0x2", 4, "I", 0)
    yield "make-value-past-end", put("ifd0:0x10f", 8, "I", end - 2)
    yield "make-value-at-0", put("ifd0:0x10f", 8, "I", 0)
    yield "type-zero", put("ifd0:0x10f", 2, "H", 0)
    yield "type-unknown", put("ifd0:0x10f", 2, "H", 99)
    yield "gps-type-unknown", put("gps:0x2", 2, "H", 0xFFFF)
    yield "gps-pointer-as-text", put("ifd0:0x8825", 2, "H", 2)
    yield "gps-pointer-as-short", put("ifd0:0x8825", 2, "H", 3)
    yield "gps-pointer-count-2", put("ifd0:0x8825", 4, "I", 2)
    yield "exif-pointer-as-rational", put("ifd0:0x8769", 2, "H", 5)
    yield "orientation-as-text", put("ifd0:0x112", 2, "H", 2)
    yield "orientation-as-rational", put("ifd0:0x112", 2, "H", 5)
    yield "orientation-as-long", put("ifd0:0x112", 2, "H", 4)
    yield "orientation-count-2", put("ifd0:0x112", 4, "I", 2)
    for value in (0, 9, 0xFFFF):
        yield f"orientation-{value}", put("ifd0:0x112", 8, "H", value)
    yield "chain-of-20", _chain(order, 20)
    yield "wide-3000", _wide(order, 3000)
    yield "wide-5000", _wide(order, 5000)


# --- building files ----------------------------------------------------------------------


def jpeg_insert(data: bytes, marker: int, payload: bytes, *, after: int = 2) -> bytes:
    """``data`` with one more segment at byte ``after`` (by default right after SOI)."""
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return data[:after] + segment + data[after:]


def png_chunk(kind: bytes, body: bytes, *, crc: int | None = None) -> bytes:
    value = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", value)


def png_insert(data: bytes, *chunks: bytes, before: bytes = b"IDAT") -> bytes:
    """``data`` with ``chunks`` right before the first chunk of type ``before``."""
    at = data.index(before) - 4
    return data[:at] + b"".join(chunks) + data[at:]


def riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)


def webp_with(data: bytes, *extra: bytes, flags: int | None = None) -> bytes:
    """A simple (VP8 or VP8L) WebP made extended (VP8X) with ``extra`` chunks after it.

    The flags say which chunks follow (ICC 0x20, EXIF 0x08, XMP 0x04) unless given.
    """
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    kinds = {chunk[:4] for chunk in extra}
    if flags is None:
        flags = (0x20 if b"ICCP" in kinds else 0) | (0x08 if b"EXIF" in kinds else 0)
        flags |= 0x04 if b"XMP " in kinds else 0
    vp8x = riff_chunk(
        b"VP8X",
        bytes([flags, 0, 0, 0])
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little"),
    )
    icc = [c for c in extra if c[:4] == b"ICCP"]
    rest = [c for c in extra if c[:4] != b"ICCP"]
    body = b"WEBP" + vp8x + b"".join(icc) + data[12:] + b"".join(rest)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def riff_fixed(body: bytes) -> bytes:
    """A RIFF whose size field matches ``body`` (everything after the first 8 bytes)."""
    return b"RIFF" + struct.pack("<I", len(body)) + body


def gif_application(identifier: bytes, data: bytes) -> bytes:
    """A GIF application extension whose data is laid out as XMP does it (raw, then the
    258-byte "magic trailer" that ends the sub-blocks)."""
    trailer = b"\x01" + bytes(range(0xFF, -1, -1)) + b"\x00"
    return b"\x21\xff\x0b" + identifier + data + trailer


def gif_insert(data: bytes, block: bytes) -> bytes:
    """``data`` with ``block`` right after its header and global color table."""
    flags = data[10]
    at = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    return data[:at] + block + data[at:]


@functools.cache
def srgb() -> bytes:
    """A real ICC profile, as lcms writes it."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def icc_cases() -> Iterator[tuple[str, bytes]]:
    """(name, profile) for a real profile and broken ones."""
    good = srgb()
    yield "good", good
    yield "garbage", b"not an ICC profile at all " * 8
    yield "cut-at-100", good[:100]
    yield "size-field-max", b"\xff\xff\xff\xff" + good[4:]
    yield "size-field-zero", b"\x00\x00\x00\x00" + good[4:]
    yield "tag-count-max", good[:128] + b"\xff\xff\xff\xff" + good[132:]
    yield "empty", b""


def xmp_cases() -> Iterator[tuple[str, bytes]]:
    """(name, XMP packet) for a located packet and broken or odd ones."""
    yield "gps", GPS_XMP
    yield "gps-utf16", GPS_XMP.decode().encode("utf-16-le")
    yield "orientation-only", ORIENTED_XMP
    yield "unclosed", GPS_XMP[: len(GPS_XMP) // 2]
    yield "billion-laughs", LAUGHS
    yield "not-xml", b"\x00\xff" * 64
