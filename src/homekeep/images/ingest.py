"""From received bytes to a stored image: type, structure, decode, privacy; then dedup, store."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from homekeep.core.errors import HomekeepError, InvalidInput, PayloadTooLarge, UnsupportedMedia
from homekeep.images.config import ImagesConfig
from homekeep.images.formats import (
    Format,
    check_structure,
    check_type,
    decode,
    dimensions,
    sniff,
)
from homekeep.images.metadata import clean
from homekeep.images.store import ImageRecord, ImageStore, expiry
from homekeep.images.uploads import Upload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """The outcome of an upload: the record, its delete token, and whether it is new."""

    record: ImageRecord
    delete_token: str | None
    created: bool


@dataclass(frozen=True)
class Checked:
    """An upload that passed every check: the bytes to store, their format and size."""

    data: bytes
    fmt: Format
    width: int
    height: int


def check(config: ImagesConfig, allowed: tuple[str, ...], upload: Upload) -> Checked:
    """Check an upload completely (type, structure, full decode, privacy); 413, 415 or 422.

    This is the step that holds whole frames in memory: callers bound how many run at once.
    """
    data = upload.data
    if len(data) > config.max_bytes:
        raise PayloadTooLarge(
            f"the image is {len(data)} bytes; the limit is {config.max_bytes} ([images] max_bytes)"
        )
    if not data:
        raise InvalidInput("the image is empty")
    declared = upload.declared or sniff(data)
    if declared is None:
        raise UnsupportedMedia(f"not an image we host; send one of: {', '.join(allowed)}")
    fmt = check_type(data, declared, allowed)
    check_structure(data, fmt)
    decoded = decode(
        data,
        fmt,
        max_pixels=config.max_pixels,
        max_frames=config.max_frames,
        max_total_pixels=config.max_total_pixels,
    )
    width, height = decoded.width, decoded.height
    try:
        stored = clean(
            data, fmt, strip_gps=config.strip_gps, apply_orientation=config.apply_orientation
        )
        if stored is not data:
            width, height = dimensions(stored, fmt)
    except HomekeepError:
        raise
    except Exception as exc:  # Pillow raises many kinds; the corpus tests find none here
        log.warning("refused a %s whose metadata could not be cleaned", fmt.mime, exc_info=True)
        raise InvalidInput(f"cannot clean the metadata of this {fmt.mime}: {exc}") from exc
    return Checked(stored, fmt, width, height)


def save(
    store: ImageStore,
    config: ImagesConfig,
    checked: Checked,
    upload: Upload,
    owner: str | None,
) -> Stored:
    """Store a checked upload (or find its duplicate); 422 for an expiry over the cap."""
    if config.dedup:
        existing = store.duplicate(owner, hashlib.sha256(checked.data).hexdigest())
        if existing is not None:
            return Stored(existing, None, created=False)
    seconds = upload.expires_in or config.default_expiry_seconds
    if config.max_expiry_seconds and seconds > config.max_expiry_seconds:
        raise InvalidInput(
            f"expires_in {seconds} is over the limit of {config.max_expiry_seconds} seconds"
        )
    if config.max_expiry_seconds and not seconds:
        seconds = config.max_expiry_seconds
    record, token = store.add(
        checked.data,
        ext=checked.fmt.ext,
        mime_type=checked.fmt.mime,
        file_name=upload.file_name,
        width=checked.width,
        height=checked.height,
        owner=owner,
        expires_at=expiry(seconds),
    )
    return Stored(record, token, created=True)
