"""Small WebP previews for the upload page, made on first request and kept on disk."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from PIL import Image

from homekeep.core.errors import InvalidInput
from homekeep.core.files import write_atomic
from homekeep.images.formats import BY_EXT
from homekeep.images.metadata import upright

SIDE = 320
log = logging.getLogger(__name__)


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
    try:
        with Image.open(source, formats=[BY_EXT[ext].pil]) as im:
            im.draft("RGB", (SIDE, SIDE))  # JPEG decodes at a reduced scale: much faster
            im.load()  # a PNG may state its EXIF after the pixels
            frame = upright(im)  # by our own strict EXIF reading: a broken block turns nothing
            frame.thumbnail((SIDE, SIDE))
            if frame.mode not in ("RGB", "RGBA"):
                if frame.mode == "P" and _overlong_transparency(frame):
                    frame.info.pop("transparency")  # browsers ignore the extra entries too
                frame = frame.convert("RGBA")
            out = io.BytesIO()
            frame.save(out, "WEBP", quality=80)
    except FileNotFoundError:
        raise
    except Exception as exc:  # Pillow raises many kinds; the corpus tests find none here
        log.warning("cannot make a thumbnail of %s", source.name, exc_info=True)
        raise InvalidInput(f"cannot make a thumbnail of this image: {exc}") from exc
    data = out.getvalue()
    write_atomic(target, data, durable=False)  # a thumbnail can always be made again
    return data


def _overlong_transparency(frame: Image.Image) -> bool:
    """Return True if a palette image has more transparency entries (tRNS) than colours."""
    alphas = frame.info.get("transparency")
    return isinstance(alphas, bytes) and len(alphas) > len(frame.getpalette() or ()) // 3
