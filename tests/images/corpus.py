"""The broken-image corpus, made here: real images, each broken in one place on purpose.

The images are real: ffmpeg encodes its lavfi test source (testsrc2) in every accepted
format, still and animated. Metadata is added the way cameras and editors write it (EXIF
with a location and an orientation, an ICC profile, XMP with a location), then each case
breaks one thing of one format: its EXIF (truncated, wrong offsets, directory loops, huge
counts, wrong types), its ICC profile, its XMP, or its blocks (truncated, wrong lengths
and CRCs, decompression bombs, frame counts, bytes after the end). Nothing is random: the
same ffmpeg makes the same corpus on every run.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image

from tests.images import samples
from tests.images.makers import (
    GPS_XMP,
    bases,
    camera_exif,
    exif_cases,
    gif_application,
    gif_insert,
    icc_cases,
    jpeg_insert,
    png_chunk,
    png_insert,
    put_int,
    riff_chunk,
    riff_fixed,
    srgb,
    webp_with,
    xmp_cases,
)


@dataclass(frozen=True)
class Case:
    """One upload: a name (format/what is broken), the bytes, the type to declare, and what
    must come of it: "stored", an error code, or "" when either is right."""

    name: str
    data: bytes
    mime: str
    expect: str = ""


# --- the cases ---------------------------------------------------------------------------

HTML = samples.HTML
STORED, INVALID, BOMB = "stored", "invalid_input", "too_many_pixels"


def _cuts(name: str, data: bytes, mime: str, points: list[int]) -> Iterator[Case]:
    for cut in points:  # cut inside the magic bytes, the type is unknown: 415
        yield Case(f"{name}/cut-at-{cut}", data[:cut], mime, INVALID if cut >= 16 else "")


def png_blocks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Where the first chunk of each type starts and ends (test code's own reading)."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        found.setdefault(data[pos + 4 : pos + 8], (pos, pos + 12 + length))
        pos += 12 + length
    return found


def jpeg_segments(data: bytes) -> dict[int, tuple[int, int]]:
    """Where the first segment of each marker starts and ends, up to the first scan."""
    found: dict[int, tuple[int, int]] = {}
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        found.setdefault(data[pos + 1], (pos, pos + 2 + length))
        if data[pos + 1] == 0xDA:
            break
        pos += 2 + length
    return found


def _patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def _app1_exif(tiff: bytes) -> bytes:
    return b"Exif\x00\x00" + tiff


def _icc_app2(profile: bytes, seq: int = 1, count: int = 1) -> bytes:
    return b"ICC_PROFILE\x00" + bytes([seq, count]) + profile


def _itxt(keyword: bytes, text: bytes, *, compressed: bool = False) -> bytes:
    body = zlib.compress(text) if compressed else text
    return png_chunk(b"iTXt", keyword + b"\x00" + bytes([int(compressed), 0]) + b"\x00\x00" + body)


def _raw_profile(tiff: bytes) -> bytes:
    """ImageMagick's copy of EXIF in a PNG: a zTXt chunk of hex."""
    block = _app1_exif(tiff).hex()
    lines = "\n".join(block[i : i + 72] for i in range(0, len(block), 72))
    text = f"\nexif\n{len(block) // 2:8d}\n{lines}\n".encode()
    return png_chunk(b"zTXt", b"Raw profile type exif\x00\x00" + zlib.compress(text))


def metadata_cases() -> Iterator[Case]:
    """EXIF, ICC and XMP, good and broken, in each format that carries them."""
    b = bases()
    jpeg, png, webp = b["jpeg"], b["png"], b["webp-lossless"]
    turn = _app1_exif(camera_exif("<")[0])
    for order, label in (("<", "le"), (">", "be")):
        for name, tiff in exif_cases(order):
            yield Case(
                f"jpeg/exif-{label}-{name}",
                jpeg_insert(jpeg, 0xE1, _app1_exif(tiff)),
                "image/jpeg",
                STORED,
            )
            yield Case(
                f"png/exif-{label}-{name}",
                png_insert(png, png_chunk(b"eXIf", tiff)),
                "image/png",
                STORED,
            )
            if order == "<":
                yield Case(
                    f"webp/exif-{name}",
                    webp_with(webp, riff_chunk(b"EXIF", tiff)),
                    "image/webp",
                    STORED,
                )
    good = camera_exif("<")[0]
    yield Case(
        "jpeg/exif-twice-gps-in-second",
        jpeg_insert(
            jpeg_insert(jpeg, 0xE1, _app1_exif(good)), 0xE1, _app1_exif(camera_exif("<", 1)[0])
        ),
        "image/jpeg",
        STORED,
    )
    yield Case(
        "png/exif-with-header",
        png_insert(png, png_chunk(b"eXIf", _app1_exif(good))),
        "image/png",
        STORED,
    )
    yield Case(
        "png/exif-after-pixels",
        png_insert(png, png_chunk(b"eXIf", good), before=b"IEND"),
        "image/png",
        STORED,
    )
    yield Case("png/raw-profile-exif", png_insert(png, _raw_profile(good)), "image/png", STORED)
    yield Case(
        "webp/exif-with-header",
        webp_with(webp, riff_chunk(b"EXIF", _app1_exif(good))),
        "image/webp",
        STORED,
    )
    yield Case("webp/exif-flag-without-chunk", webp_with(webp, flags=0x08), "image/webp")
    yield Case(
        "webp/exif-chunk-without-flag",
        webp_with(webp, riff_chunk(b"EXIF", good), flags=0),
        "image/webp",
        STORED,
    )
    yield Case(
        "webp/lossy-exif", webp_with(b["webp"], riff_chunk(b"EXIF", good)), "image/webp", STORED
    )
    for name, profile in icc_cases():
        yield Case(
            f"jpeg/icc-{name}",
            jpeg_insert(jpeg_insert(jpeg, 0xE2, _icc_app2(profile)), 0xE1, turn),
            "image/jpeg",
        )
        iccp = png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(profile))
        yield Case(
            f"png/icc-{name}", png_insert(png, iccp, png_chunk(b"eXIf", turn[6:])), "image/png"
        )
        yield Case(
            f"webp/icc-{name}",
            webp_with(webp, riff_chunk(b"ICCP", profile), riff_chunk(b"EXIF", turn[6:])),
            "image/webp",
        )
    profile = srgb()
    half = len(profile) // 2
    for name, parts in {
        "seq-0": [_icc_app2(profile, 0, 1)],
        "seq-past-count": [_icc_app2(profile, 3, 1)],
        "count-0": [_icc_app2(profile, 1, 0)],
        "one-of-two": [_icc_app2(profile[:half], 1, 2)],
        "twice-seq-1": [_icc_app2(profile[:half], 1, 2), _icc_app2(profile[half:], 1, 2)],
        "reversed": [_icc_app2(profile[half:], 2, 2), _icc_app2(profile[:half], 1, 2)],
    }.items():
        data = jpeg
        for part in reversed(parts):
            data = jpeg_insert(data, 0xE2, part)
        yield Case(f"jpeg/icc-{name}", jpeg_insert(data, 0xE1, turn), "image/jpeg")
    for name, body in {
        "method-1": b"icc\x00\x01" + zlib.compress(profile),
        "not-zlib": b"icc\x00\x00" + profile,
        "bomb": b"icc\x00\x00" + zlib.compress(bytes(16 * 1024 * 1024), 9),
        "no-name-end": b"icc" * 30,
    }.items():
        yield Case(f"png/iccp-{name}", png_insert(png, png_chunk(b"iCCP", body)), "image/png")
    yield Case("webp/icc-flag-without-chunk", webp_with(webp, flags=0x20), "image/webp")
    xmp_head = b"http://ns.adobe.com/xap/1.0/\x00"
    for name, packet in xmp_cases():
        yield Case(
            f"jpeg/xmp-{name}", jpeg_insert(jpeg, 0xE1, xmp_head + packet), "image/jpeg", STORED
        )
        yield Case(
            f"png/xmp-{name}",
            png_insert(png, _itxt(b"XML:com.adobe.xmp", packet)),
            "image/png",
            STORED,
        )
        yield Case(
            f"png/xmp-zipped-{name}",
            png_insert(png, _itxt(b"XML:com.adobe.xmp", packet, compressed=True)),
            "image/png",
            STORED,
        )
        yield Case(
            f"webp/xmp-{name}", webp_with(webp, riff_chunk(b"XMP ", packet)), "image/webp", STORED
        )
        yield Case(
            f"gif/xmp-{name}",
            gif_insert(b["gif"], gif_application(b"XMP DataXMP", packet)),
            "image/gif",
        )
    extension = b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32 + struct.pack(">II", 300, 0)
    yield Case(
        "jpeg/xmp-extension-gps", jpeg_insert(jpeg, 0xE1, extension + GPS_XMP), "image/jpeg", STORED
    )
    yield Case(
        "png/xmp-bomb",
        png_insert(png, _itxt(b"XML:com.adobe.xmp", bytes(16 * 1024 * 1024), compressed=True)),
        "image/png",
    )
    yield Case(
        "gif/xmp-without-trailer",
        gif_insert(b["gif"], b"\x21\xff\x0bXMP DataXMP" + GPS_XMP + b"\x00"),
        "image/gif",
    )
    yield Case("webp/xmp-flag-without-chunk", webp_with(webp, flags=0x04), "image/webp")


def png_cases() -> Iterator[Case]:
    """PNG and APNG blocks: cut, mislabelled, out of order, oversized, bombs."""
    b, m = bases(), "image/png"
    png, apng = b["png"], b["apng"]
    at = png_blocks(png)
    ihdr, idat, iend = at[b"IHDR"], at[b"IDAT"], at[b"IEND"]
    yield from _cuts("png", png, m, [8, 20, ihdr[1], idat[0] + 30, iend[0], len(png) - 1])
    for kind, (_, end) in (("ihdr", ihdr), ("idat", idat), ("iend", iend)):
        yield Case(f"png/bad-crc-{kind}", _patch(png, end - 4, b"\xde\xad\xbe\xef"), m)
    text = png_chunk(b"tEXt", b"Comment\x00hello", crc=0)
    yield Case("png/bad-crc-text", png_insert(png, text), m)
    for value in (0x7FFFFFFF, 0xFFFFFFFF, 0):
        yield Case(f"png/idat-length-{value:x}", _patch(png, idat[0], value.to_bytes(4, "big")), m)

    def header(**fields: int) -> bytes:
        values = dict(
            zip(
                ("w", "h", "depth", "color", "comp", "filt", "lace"),
                struct.unpack(">IIBBBBB", png[16:29]),
                strict=True,
            )
        )
        values.update(fields)
        body = struct.pack(">IIBBBBB", *values.values())
        return png[:8] + png_chunk(b"IHDR", body) + png[ihdr[1] :]

    for name, fields in {
        "zero-width": {"w": 0},
        "zero-height": {"h": 0},
        "depth-3": {"depth": 3},
        "color-5": {"color": 5},
        "compression-1": {"comp": 1},
        "filter-7": {"filt": 7},
        "interlace-2": {"lace": 2},
        "width-max": {"w": 0x7FFFFFFF},
    }.items():
        yield Case(f"png/ihdr-{name}", header(**fields), m)
    yield Case("png/bomb-100000", samples.png_claiming(100_000, 100_000), m, BOMB)
    yield Case("png/bomb-3000", samples.png_claiming(3000, 3000), m, BOMB)
    yield Case("png/no-ihdr", png[:8] + png[ihdr[1] :], m, INVALID)
    yield Case("png/two-ihdr", png[: ihdr[1]] + png[ihdr[0] : ihdr[1]] + png[ihdr[1] :], m)
    yield Case(
        "png/ihdr-after-idat",
        png[:8] + png[ihdr[1] : idat[1]] + png[ihdr[0] : ihdr[1]] + png[idat[1] :],
        m,
        INVALID,
    )
    raw_idat = png[idat[0] + 8 : idat[1] - 4]
    for name, body in {
        "garbage": b"\x78\x9c" + bytes(range(256)) * 4,
        "cut-stream": raw_idat[: len(raw_idat) // 2],
        "empty": b"",
        "overlong": zlib.compress(zlib.decompress(raw_idat) + bytes(50 * 1024 * 1024), 9),
    }.items():
        yield Case(
            f"png/idat-{name}", png[: idat[0]] + png_chunk(b"IDAT", body) + png[idat[1] :], m
        )
    yield Case("png/html-after-iend", png + HTML, m, INVALID)
    yield Case("png/chunk-after-iend", png + png_chunk(b"tEXt", b"a\x00b"), m, INVALID)
    yield Case(
        "png/70000-chunks", png_insert(png, png_chunk(b"tEXt", b"a\x00b") * 70_000), m, INVALID
    )
    yield Case(
        "png/ztxt-bomb",
        png_insert(
            png, png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(16 * 1024 * 1024), 9))
        ),
        m,
    )
    yield Case("png/plte-too-long", png_insert(png, png_chunk(b"PLTE", bytes(3 * 1000))), m)
    pal = b["png-palette"]
    trns = png_chunk(b"tRNS", bytes(1000))
    yield Case("png/trns-too-long", png_insert(pal, trns), m)
    for name in ("png-gray16", "png-palette", "png-la", "png-rgba64"):
        yield Case(
            f"png/{name.removeprefix('png-')}-upright",
            png_insert(b[name], png_chunk(b"eXIf", camera_exif("<")[0])),
            m,
            STORED,
        )
    actl = png_blocks(apng)[b"acTL"]
    fctl = png_blocks(apng)[b"fcTL"]
    for name, frames in {"frames-max": 0xFFFFFFFF, "frames-0": 0, "frames-9": 9}.items():
        body = struct.pack(">II", frames, 0)
        yield Case(f"apng/actl-{name}", _patch(apng, actl[0], png_chunk(b"acTL", body)), m)
    control = bytearray(apng[fctl[0] + 8 : fctl[1] - 4])
    struct.pack_into(">II", control, 4, 100_000, 100_000)
    yield Case("apng/fctl-huge-frame", _patch(apng, fctl[0], png_chunk(b"fcTL", bytes(control))), m)
    struct.pack_into(">I", control, 0, 7)
    yield Case(
        "apng/fctl-wrong-sequence", _patch(apng, fctl[0], png_chunk(b"fcTL", bytes(control))), m
    )
    fdat = png_blocks(apng)[b"fdAT"]
    yield Case("apng/no-fdat", apng[: fdat[0]] + apng[fdat[1] :], m)
    yield Case("apng/too-many-frames", b["apng-long"], m, INVALID)
    yield Case(
        "apng/upright-is-not-turned",
        png_insert(apng, png_chunk(b"eXIf", camera_exif("<")[0])),
        m,
        STORED,
    )


def jpeg_cases() -> Iterator[Case]:
    """JPEG segments: cut, wrong lengths, impossible frames, bombs, pictures after pictures."""
    b, m = bases(), "image/jpeg"
    jpeg = b["jpeg"]
    seg = jpeg_segments(jpeg)
    sof, sos, dqt = seg[0xC0], seg[0xDA], seg[0xDB]
    yield from _cuts(
        "jpeg",
        jpeg,
        m,
        [2, 3, 5, dqt[0] + 10, sof[0] + 6, sos[0] + 5, sos[1] + 100, len(jpeg) - 2, len(jpeg) - 1],
    )
    yield Case("jpeg/cut-then-eoi", jpeg[: sos[1] + 100] + b"\xff\xd9", m)
    for name, (w, h) in {
        "zero": (0, 0),
        "bomb": (65_500, 65_500),
        "over-max": (2100, 2100),
    }.items():
        expect = BOMB if w * h > 4_000_000 else ""
        yield Case(
            f"jpeg/sof-{name}", _patch(jpeg, sof[0] + 5, struct.pack(">HH", h, w)), m, expect
        )
    for components in (0, 5, 255):
        yield Case(
            f"jpeg/sof-components-{components}", _patch(jpeg, sof[0] + 9, bytes([components])), m
        )
    for precision in (12, 16, 0):
        yield Case(
            f"jpeg/sof-precision-{precision}", _patch(jpeg, sof[0] + 4, bytes([precision])), m
        )
    for marker, name in (
        (0xC1, "extended"),
        (0xC2, "progressive"),
        (0xC3, "lossless"),
        (0xC9, "arithmetic"),
        (0xCF, "lossless-arithmetic"),
    ):
        yield Case(f"jpeg/sof-as-{name}", _patch(jpeg, sof[0] + 1, bytes([marker])), m)
    for length in (0, 1, 0xFFFF):
        yield Case(
            f"jpeg/dqt-length-{length}", _patch(jpeg, dqt[0] + 2, struct.pack(">H", length)), m
        )
    yield Case("jpeg/dqt-table-15", _patch(jpeg, dqt[0] + 4, b"\x0f"), m)
    yield Case("jpeg/no-dht", b"".join(_without_marker(jpeg, 0xC4)), m)
    yield Case("jpeg/no-scan", jpeg[: sos[0]] + b"\xff\xd9", m)
    yield Case("jpeg/two-soi", jpeg[:2] + jpeg, m, INVALID)
    yield Case("jpeg/soi-eoi", b"\xff\xd8\xff\xd9", m, INVALID)
    yield Case("jpeg/fill-bytes", jpeg[:2] + b"\xff" * 50 + jpeg[2:], m, STORED)
    yield Case("jpeg/junk-between-segments", jpeg[: dqt[0]] + b"junk!" + jpeg[dqt[0] :], m)
    yield Case("jpeg/dri-huge", jpeg_insert(jpeg, 0xDD, b"\xff\xff", after=sos[0]), m)
    yield Case("jpeg/dri-bad-length", jpeg_insert(jpeg, 0xDD, b"\x00", after=sos[0]), m)
    yield Case(
        "jpeg/70000-comments", jpeg[:2] + b"\xff\xfe\x00\x02" * 70_000 + jpeg[2:], m, INVALID
    )
    yield Case(
        "jpeg/100-big-app-segments",
        jpeg[:2] + (b"\xff\xef\xea\x62" + bytes(60_000)) * 100 + jpeg[2:],
        m,
        STORED,
    )
    yield Case("jpeg/html-after-eoi", jpeg + HTML, m, INVALID)
    yield Case("jpeg/html-then-eoi", jpeg + HTML + b"\xff\xd9", m, INVALID)
    yield Case("jpeg/zeros-after-eoi", jpeg + bytes(64), m, INVALID)
    with Image.open(io.BytesIO(jpeg)) as im:
        progressive, gray, cmyk = io.BytesIO(), io.BytesIO(), io.BytesIO()
        im.save(progressive, "JPEG", progressive=True, exif=_app1_exif(camera_exif(">")[0]))
        im.convert("L").save(gray, "JPEG", exif=_app1_exif(camera_exif("<")[0]))
        im.convert("CMYK").save(cmyk, "JPEG", exif=_app1_exif(camera_exif("<")[0]))
        second, mpo = io.BytesIO(), io.BytesIO()
        im.save(second, "JPEG", exif=_app1_exif(camera_exif("<", 1)[0]))
        im.save(mpo, "MPO", save_all=True, append_images=[Image.open(second)])
    data = progressive.getvalue()
    yield Case("jpeg/progressive-upright", data, m, STORED)
    yield from _cuts("jpeg/progressive", data, m, [len(data) // 2])
    yield Case("jpeg/gray-upright", gray.getvalue(), m, STORED)
    yield Case("jpeg/cmyk-upright", cmyk.getvalue(), m, STORED)
    yield from mpo_cases(mpo.getvalue())


def _without_marker(data: bytes, marker: int) -> Iterator[bytes]:
    """The bytes of ``data`` without its header segments of ``marker``."""
    pos = 2
    yield data[:2]
    while data[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if data[pos + 1] != marker:
            yield data[pos:end]
        pos = end
    yield data[pos:]


def mpo_cases(mpo: bytes) -> Iterator[Case]:
    """A two-picture MPO with a location in its second picture only, and broken indexes."""
    m = "image/jpeg"
    second = mpo.index(b"\xff\xd9\xff\xd8") + 2
    located = jpeg_insert(mpo[second:], 0xE1, _app1_exif(camera_exif("<")[0]))
    yield Case("jpeg/mpo-gps-in-second-picture", mpo[:second] + located, m, STORED)
    index = mpo.index(b"MPF\x00") + 4
    order = "<" if mpo[index : index + 2] == b"II" else ">"
    entries = mpo.index(struct.pack(order + "H", 0xB002), index)  # the MP Entry tag
    offset = struct.unpack_from(order + "I", mpo, entries + 8)[0]
    first_entry = index + offset
    for name, (at, value) in {
        "second-offset-past-end": (first_entry + 16 + 8, 0x7FFFFFF0),
        "second-offset-0": (first_entry + 16 + 8, 0),
        "first-size-0": (first_entry + 4, 0),
        "count-max": (entries + 4, 0x0FFFFFFF),
    }.items():
        yield Case(f"jpeg/mpo-{name}", put_int(mpo, order, at, "I", value), m)


def gif_cases() -> Iterator[Case]:
    """GIF blocks: cut, impossible screens and frames, bad LZW, bombs, frame counts."""
    b, m = bases(), "image/gif"
    gif = b["gif"]
    table = 3 * 2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0
    first = gif.index(b"\x2c", 13 + table)  # the first image descriptor
    yield from _cuts(
        "gif", gif, m, [6, 10, 13, 13 + table // 2, first + 5, first + 40, len(gif) - 1]
    )
    yield Case("gif/screen-zero", _patch(gif, 6, b"\x00\x00\x00\x00"), m)
    yield Case("gif/frame-outside-screen", _patch(gif, first + 1, b"\x60\xea\x60\xea"), m)
    yield Case(
        "gif/frame-bomb",
        _patch(gif, 6, b"\xff\xff\xff\xff")[: first + 5] + b"\xff\xff\xff\xff" + gif[first + 9 :],
        m,
        BOMB,
    )
    code_at = first + 10 + (3 * 2 ** ((gif[first + 9] & 7) + 1) if gif[first + 9] & 0x80 else 0)
    for size in (0, 12, 255):
        yield Case(f"gif/lzw-code-size-{size}", _patch(gif, code_at, bytes([size])), m)
    lzw = code_at + 2
    yield Case("gif/lzw-garbage", _patch(gif, lzw, bytes(range(200, 255))), m)
    yield Case(
        "gif/sub-block-past-end",
        gif[: code_at + 1] + b"\xff" + gif[code_at + 2 : code_at + 40],
        m,
        INVALID,
    )
    yield Case("gif/unknown-block", gif[:first] + b"\x00" + gif[first:], m, INVALID)
    yield Case(
        "gif/netscape-wrong-size", gif_insert(gif, b"\x21\xff\x05NETSC\x03\x01\x00\x00\x00"), m
    )
    yield Case(
        "gif/100k-comment",
        gif_insert(gif, b"\x21\xfe" + (b"\xff" + bytes(255)) * 400 + b"\x00"),
        m,
        STORED,
    )
    yield Case("gif/gce-size-0", gif_insert(gif, b"\x21\xf9\x00\x00"), m)
    yield Case("gif/too-many-frames", b["gif-long"], m, INVALID)
    yield Case("gif/canvas-frames-over-total", samples.gif_of_tiny_updates(2000, 30), m, BOMB)
    yield Case("gif/bomb-in-frame-2", samples.gif_with_big_later_frame(65535, 65535), m, BOMB)
    yield Case("gif/html-after-trailer", gif + HTML, m, INVALID)
    yield Case("gif/html-then-semicolon", gif + HTML + b";", m, INVALID)
    yield Case("gif/70000-empty-comments", gif_insert(gif, b"\x21\xfe\x00" * 70_000), m, INVALID)


def webp_cases() -> Iterator[Case]:
    """WebP chunks: RIFF sizes, cut bitstreams, canvases, flags, animation frames."""
    b, m = bases(), "image/webp"
    lossy, lossless, anim = b["webp"], b["webp-lossless"], b["webp-anim"]
    for name, data in (("lossy", lossy), ("lossless", lossless), ("anim", anim)):
        size = len(data) - 8
        for label, value in (
            ("plus-2", size + 2),
            ("minus-2", size - 2),
            ("zero", 0),
            ("max", 0xFFFFFFFF),
            ("odd", size - 1),
        ):
            yield Case(
                f"webp/{name}-riff-size-{label}", _patch(data, 4, struct.pack("<I", value)), m
            )
        yield from _cuts(f"webp/{name}", data, m, [12, 20, len(data) // 2, len(data) - 1])
        yield Case(f"webp/{name}-html-after", data + HTML, m, INVALID)
        yield Case(
            f"webp/{name}-unknown-chunk",
            riff_fixed(data[8:] + riff_chunk(b"ABCD", b"x" * 9)),
            m,
            STORED,
        )
        yield Case(
            f"webp/{name}-chunk-without-padding",
            riff_fixed(data[8:] + b"ABCD" + struct.pack("<I", 9) + b"x" * 9),
            m,
            INVALID,
        )
    yield Case(
        "webp/vp8-size-past-riff", _patch(lossy, 16, struct.pack("<I", len(lossy))), m, INVALID
    )
    yield Case("webp/vp8-garbage", lossy[:30] + bytes(len(lossy) - 30), m)
    yield Case("webp/vp8l-garbage", lossless[:25] + bytes(range(256))[: len(lossless) - 25], m)
    header = int.from_bytes(lossless[21:25], "little")
    huge = (header & ~((1 << 28) - 1)) | (16383 << 14) | 16383
    yield Case("webp/vp8l-bomb", _patch(lossless, 21, struct.pack("<I", huge)), m, BOMB)
    yield Case(
        "webp/vp8x-canvas-bomb",
        webp_with(lossless)[:24] + b"\xff\x3f\x00\xff\x3f\x00" + webp_with(lossless)[30:],
        m,
    )
    yield Case("webp/vp8x-says-animation", webp_with(lossless, flags=0x02), m)
    anmf = anim.index(b"ANMF")
    yield Case("webp/anmf-outside-canvas", _patch(anim, anmf + 8, b"\xff\xff\x7f\xff\xff\x7f"), m)
    yield Case("webp/anmf-frame-huge", _patch(anim, anmf + 14, b"\xff\x3f\x00\xff\x3f\x00"), m)
    yield Case("webp/anmf-size-wrong", _patch(anim, anmf + 4, struct.pack("<I", 10)), m)
    start = anim.index(b"ANIM")
    yield Case("webp/no-anim-chunk", riff_fixed(anim[8:start] + anim[start + 14 :]), m)
    yield Case("webp/too-many-frames", b["webp-long"], m, INVALID)


def avif_cases() -> Iterator[Case]:
    """AVIF boxes, and its EXIF and XMP items: located, broken in place."""
    b, m = bases(), "image/avif"
    avif = b["avif"]
    yield from _cuts("avif", avif, m, [12, 30, len(avif) // 2, len(avif) - 1])
    ftyp = int.from_bytes(avif[:4], "big")
    yield Case("avif/ftyp-only", avif[:ftyp], m)
    last = avif.rindex(b"mdat") - 4
    yield Case("avif/last-box-size-0", _patch(avif, last, b"\x00\x00\x00\x00"), m)
    yield Case("avif/box-size-2", _patch(avif, ftyp, b"\x00\x00\x00\x02"), m, INVALID)
    yield Case("avif/box-size-max", _patch(avif, ftyp, b"\xff\xff\xff\xff"), m, INVALID)
    meta = int.from_bytes(avif[ftyp : ftyp + 4], "big")
    yield Case("avif/meta-zeroed", avif[: ftyp + 8] + bytes(meta - 8) + avif[ftyp + meta :], m)
    ispe = avif.index(b"ispe")
    yield Case("avif/ispe-bomb", _patch(avif, ispe + 8, struct.pack(">II", 60_000, 60_000)), m)
    yield Case("avif/mdat-zeroed", avif[: last + 8] + bytes(len(avif) - last - 8), m)
    yield Case("avif/html-after", avif + HTML, m, INVALID)
    with Image.open(io.BytesIO(avif)) as im:
        out = io.BytesIO()
        im.save(out, "AVIF", exif=_app1_exif(camera_exif("<", 1)[0]), xmp=GPS_XMP)
        located = out.getvalue()
    yield Case("avif/exif-and-xmp-gps", located, m, STORED)
    with Image.open(io.BytesIO(located)) as im:
        tiff = im.info["exif"][6:]
    at = located.index(tiff)
    for name, new in {
        "not-tiff": b"JUNK",
        "ifd0-past-end": tiff[:4] + b"\x7f\xff\xff\xf0",
        "ifd0-count-max": tiff[:8] + b"\xff\xff",
        "zeros": bytes(len(tiff)),
    }.items():
        yield Case(f"avif/exif-{name}", _patch(located, at, new), m)


def generated() -> list[Case]:
    """Every case made here, in a fixed order."""
    makers: list[Callable[[], Iterator[Case]]] = [
        metadata_cases,
        png_cases,
        jpeg_cases,
        gif_cases,
        webp_cases,
    ]
    if "avif" in bases():
        makers.append(avif_cases)
    return [case for make in makers for case in make()]
