"""Images and hostile files for the tests, made here with Pillow or by hand."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import ExifTags, Image, features

HAS_AVIF = features.check("avif")


def picture(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    """A small picture with some detail, different for each seed."""
    im = Image.new("RGB", size, (seed * 37 % 256, 90, 200))
    for x in range(0, size[0], 4):
        im.putpixel((x, (x + seed) % size[1]), (255, 255, seed % 256))
    return im


def encode(fmt: str, size: tuple[int, int] = (64, 48), seed: int = 0, **options: object) -> bytes:
    """A picture saved in one of Pillow's formats (PNG, JPEG, GIF, WEBP, AVIF)."""
    out = io.BytesIO()
    picture(size, seed).save(out, fmt, **options)
    return out.getvalue()


def png(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode("PNG", size, seed)


def noise_png(side: int) -> bytes:
    """A PNG of random pixels (they do not compress): about 3 x side x side bytes."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(
        out, "PNG"
    )
    return out.getvalue()


def animated_gif(frames: int = 3) -> bytes:
    out = io.BytesIO()
    images = [picture(seed=i).convert("P") for i in range(frames)]
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def gps_exif(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "HomeCam"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)}
    return exif.tobytes()


def with_gps(fmt: str, orientation: int = 1, size: tuple[int, int] = (40, 20)) -> bytes:
    return encode(fmt, size, exif=gps_exif(orientation))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def gif_with_big_later_frame(width: int, height: int) -> bytes:
    """A 1x1 GIF whose second frame claims ``width`` x ``height``: a bomb hidden in frame 2."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    control = b"\x21\xf9\x04\x00\x00\x00\x00\x00"
    first = control + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    later = (
        control + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    )
    return head + first + later + b";"


def gif_of_tiny_updates(side: int, frames: int) -> bytes:
    """A GIF of ``frames`` 1x1 updates on a ``side`` x ``side`` canvas: a few bytes a frame,
    a whole canvas of pixels a frame to decode."""
    head = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    control = b"\x21\xf9\x04\x00\x00\x00\x00\x00"
    frame = control + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + frame * frames + b";"


def corrupt_png() -> bytes:
    """A PNG whose pixel data is damaged (CRC and zlib stream broken) but whose chunks line up."""
    data = bytearray(png(seed=9))
    start = data.index(b"IDAT") + 4
    for i in range(start + 2, start + 12):
        data[i] ^= 0x5A
    return bytes(data)


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b'<rect width="10" height="10"/></svg>'
)
ZIP_TAIL = b"PK\x05\x06" + b"\x00" * 18
