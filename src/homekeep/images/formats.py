"""What an upload really is: the type from its bytes, its structure, and a full decode.

The declared MIME type is never trusted: the magic bytes decide the type, that type must be
the declared one and an allowed one, the container must end exactly where the image ends
(no appended HTML or ZIP), and Pillow must decode every frame with only that format's
decoder enabled, within the pixel and frame limits.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, features

from homekeep.core.errors import InvalidInput, UnsupportedMedia
from homekeep.images import chunks


@dataclass(frozen=True)
class Format:
    """An image format we host: its MIME type, our file extension, Pillow's name."""

    mime: str
    ext: str
    pil: str


FORMATS: dict[str, Format] = {
    f.mime: f
    for f in (
        Format("image/png", "png", "PNG"),
        Format("image/jpeg", "jpg", "JPEG"),
        Format("image/gif", "gif", "GIF"),
        Format("image/webp", "webp", "WEBP"),
        Format("image/avif", "avif", "AVIF"),
    )
}
# Pillow warns on stderr about every corrupt EXIF, APNG or MPO index it reads: a stream of
# hostile uploads would flood the server's console with them, and each file is refused or
# cleaned here anyway. Set once at import: warnings.catch_warnings around each decode would
# change the process-wide filters from many threads at once (it is not thread-safe).
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
BY_EXT: dict[str, Format] = {f.ext: f for f in FORMATS.values()}
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}


def supported_types(wanted: list[str]) -> tuple[str, ...]:
    """Return the configured types this Pillow can decode (AVIF needs libavif)."""
    return tuple(m for m in wanted if m != "image/avif" or features.check("avif"))


def normalize_mime(value: str) -> str:
    """Return a MIME type lowercased, without parameters, with common aliases resolved."""
    mime = value.split(";", 1)[0].strip().lower()
    return _ALIASES.get(mime, mime)


def sniff(data: bytes) -> str | None:
    """Return the MIME type the magic bytes say, or None for anything we do not host."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and len(data) >= 16:
        size = int.from_bytes(data[:4], "big")
        brands = [data[8:12]] + [data[i : i + 4] for i in range(16, min(size, 64), 4)]
        if b"avif" in brands or b"avis" in brands:
            return "image/avif"
    return None


def check_type(data: bytes, declared: str, allowed: tuple[str, ...]) -> Format:
    """Return the format of ``data`` if it is allowed and is what the client declared."""
    if not data:
        raise InvalidInput("the image is empty")
    mime = normalize_mime(declared)
    if mime not in allowed:
        raise UnsupportedMedia(
            f"type {declared!r} is not accepted; send one of: {', '.join(allowed)}"
        )
    actual = sniff(data)
    if actual is None:
        raise UnsupportedMedia(f"declared {mime} but the bytes are not an image we host")
    if actual != mime:
        raise UnsupportedMedia(f"declared {mime} but the bytes are {actual}; declare {actual}")
    return FORMATS[mime]


def check_structure(data: bytes, fmt: Format) -> None:
    """Refuse truncated containers and bytes after the image's end (polyglots)."""
    try:
        _, end = chunks.WALKS[fmt.mime](data)
    except ValueError as exc:
        raise InvalidInput(f"corrupt {fmt.mime}: {exc}") from exc
    if end > len(data):
        raise InvalidInput(f"truncated {fmt.mime}: the file ends before the image does")
    if end < len(data):
        raise InvalidInput(
            f"{len(data) - end} bytes follow the end of the {fmt.mime} image; "
            "upload the image alone"
        )


@dataclass(frozen=True)
class Decoded:
    """What a full decode found."""

    width: int
    height: int
    frames: int


def decode(
    data: bytes, fmt: Format, *, max_pixels: int, max_frames: int, max_total_pixels: int
) -> Decoded:
    """Decode every frame with only ``fmt``'s decoder; raise 422 on any problem.

    The Pillow image is made, used and closed within this call, on the calling thread:
    no two threads ever share one (the same holds in ``metadata`` and ``thumbnails``).

    Each frame of an animation is a whole canvas to Pillow, however few bytes it takes: a
    1 KB GIF of 1x1 updates on a 7000x7000 canvas costs seconds of CPU per 50 frames. So
    the pixels of all frames together are capped too, checked before each frame decodes.
    """
    try:
        with Image.open(io.BytesIO(data), formats=[fmt.pil]) as im:
            width, height = im.size
            frames = total = 0
            while True:
                w, h = im.size
                if w * h > max_pixels:
                    raise InvalidInput(
                        f"frame {frames + 1} is {w}x{h} = {w * h} pixels, over the limit of "
                        f"{max_pixels} (a decompression bomb?)",
                        code="too_many_pixels",
                    )
                total += w * h
                if total > max_total_pixels:
                    raise InvalidInput(
                        f"the frames up to frame {frames + 1} add up to {total} pixels, over "
                        f"the limit of {max_total_pixels} (max_total_pixels)",
                        code="too_many_pixels",
                    )
                im.load()
                frames += 1
                try:
                    im.seek(im.tell() + 1)
                except EOFError:
                    break
                if frames >= max_frames:
                    raise InvalidInput(f"the animation has more than {max_frames} frames")
    except InvalidInput:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInput(
            f"refused as a decompression bomb: {exc}", code="too_many_pixels"
        ) from exc
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, ValueError...)
        raise InvalidInput(f"corrupt or truncated {fmt.mime}: {exc}") from exc
    return Decoded(width, height, frames)


def dimensions(data: bytes, fmt: Format) -> tuple[int, int]:
    """Return the width and height in a header (after we rewrote the file ourselves)."""
    with Image.open(io.BytesIO(data), formats=[fmt.pil]) as im:
        return im.size
