"""Small WebP previews for the upload page, made on first request and kept on disk."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps

from homekeep.core.files import write_atomic
from homekeep.images.formats import BY_EXT

SIDE = 320


def kept(target: Path) -> bytes | None:
    """Return a thumbnail made before, or None."""
    try:
        return target.read_bytes()
    except FileNotFoundError:
        return None


def make(source: Path, ext: str, target: Path) -> bytes:
    """Return the thumbnail of ``source``, writing it to ``target`` if not there yet."""
    data = kept(target)
    if data is not None:  # made by a request that held the decoding slot before us
        return data
    with Image.open(source, formats=[BY_EXT[ext].pil]) as im:
        im.draft("RGB", (SIDE, SIDE))  # JPEG decodes at a reduced scale: much faster
        frame = ImageOps.exif_transpose(im)
        frame.thumbnail((SIDE, SIDE))
        if frame.mode not in ("RGB", "RGBA"):
            frame = frame.convert("RGBA")
        out = io.BytesIO()
        frame.save(out, "WEBP", quality=80)
    data = out.getvalue()
    write_atomic(target, data, durable=False)  # a thumbnail can always be made again
    return data
