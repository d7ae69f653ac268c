"""Artwork on disk: each distinct image once by content hash, plus a thumbnail.

Embedded pictures and folder covers alike. Layout under the area's folder::

    images/full/<h[:2]>/<hash>        the original bytes, as found
    images/thumb/<h[:2]>/<hash>.jpg   a JPEG no larger than the thumbnail size
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from homekeep.core.files import write_atomic
from homekeep.core.hashing import hash_bytes
from homekeep.music.catalog import EMBEDDED
from homekeep.music.disk import Seen
from homekeep.music.kinds import COVER_EXTENSIONS

MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 100_000_000
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"WEBP", 8, "image/webp"),
    (b"GIF8", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
)


def sniff_mime(data: bytes) -> str:
    """Return the image type the bytes start with, or application/octet-stream."""
    for magic, offset, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return mime
    return "application/octet-stream"


@dataclass(frozen=True)
class ImageInfo:
    """What decoding an image found: its size in pixels, or why it could not be read."""

    hash: str
    mime: str
    bytes: int
    width: int | None
    height: int | None
    thumb_size: int
    error: str | None


class ArtworkStore:
    """Originals and thumbnails, content-addressed; safe to use from several processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._saved: set[str] = set()  # tracks of one album share a cover: check it once

    def full_path(self, digest: str) -> Path:
        return self.root / "full" / digest[:2] / digest

    def thumb_path(self, digest: str) -> Path:
        return self.root / "thumb" / digest[:2] / f"{digest}.jpg"

    def sized_path(self, digest: str, side: int) -> Path:
        """A JPEG of a stored image no larger than ``side``, made on first use (a cache)."""
        path = self.root / "sized" / str(side) / digest[:2] / f"{digest}.jpg"
        if not path.is_file():
            _shrink(self.full_path(digest), path, side)
        return path

    def remove(self, digest: str) -> None:
        """Delete an image's original and thumbnail (either may be gone already)."""
        self.full_path(digest).unlink(missing_ok=True)
        self.thumb_path(digest).unlink(missing_ok=True)
        for folder in (self.root / "sized").glob("*"):
            (folder / digest[:2] / f"{digest}.jpg").unlink(missing_ok=True)

    def save(self, data: bytes) -> str:
        """Store bytes once and return their content hash."""
        digest = hash_bytes(data)
        if digest not in self._saved:
            path = self.full_path(digest)
            if not path.exists():
                write_atomic(path, data, durable=False)  # re-extracted by a rescan
            self._saved.add(digest)
        return digest

    def process(self, digest: str, thumb_size: int) -> ImageInfo:
        """Decode a stored original: record its size and write its thumbnail."""
        from PIL import Image, UnidentifiedImageError

        path = self.full_path(digest)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return ImageInfo(digest, "application/octet-stream", 0, None, None, thumb_size,
                             f"stored image missing: {exc.strerror}")  # fmt: skip
        mime = sniff_mime(data)
        try:
            width, height = _shrink(path, self.thumb_path(digest), thumb_size)
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
            OSError,
            ValueError,
            SyntaxError,
        ) as exc:
            return ImageInfo(digest, mime, len(data), None, None, thumb_size, _reason(exc))
        return ImageInfo(digest, mime, len(data), width, height, thumb_size, None)


def shrunk_jpeg(source: Path, side: int) -> tuple[bytes, tuple[int, int]]:
    """A JPEG of the image ``source`` no larger than ``side``, and the original's size."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with Image.open(source) as img:
            size = img.size
            img.load()
            small = img.convert("RGB") if img.mode != "RGB" else img.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue(), size


def _shrink(source: Path, target: Path, side: int) -> tuple[int, int]:
    """Write ``shrunk_jpeg`` of ``source`` to ``target``; return the original's size."""
    data, size = shrunk_jpeg(source, side)
    write_atomic(target, data, durable=False)
    return size


def process_image(digest: str, root: str, size: int) -> ImageInfo:
    """Decode one stored image in a worker process (plain arguments: they are pickled)."""
    return ArtworkStore(Path(root)).process(digest, size)


def folder_covers(files: Iterable[Seen], priority: list[str]) -> list[Seen]:
    """Return the files whose names match a cover pattern of ``cover_priority``."""
    patterns = [p.lower() for p in priority if p != EMBEDDED]
    return [
        s
        for s in files
        if s.ext in COVER_EXTENSIONS
        and any(fnmatchcase(s.rel.rpartition("/")[2].lower(), p) for p in patterns)
    ]


def _reason(exc: BaseException) -> str:
    text = str(exc).replace(str(Path.cwd()), ".").splitlines()[0] if str(exc) else ""
    return f"cannot decode image: {type(exc).__name__}{': ' + text if text else ''}"
