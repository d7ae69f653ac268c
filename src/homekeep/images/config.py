"""The [images] config section: limits, ids, storage policy, access and expiry."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from homekeep.core.config import Section

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PREFIX = re.compile(r"/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)+")
# PIL.Image.MAX_IMAGE_PIXELS: past it Pillow only warns (an error comes at twice that), so
# max_pixels stays at or below it and every bomb is refused by our own check, as an error.
PILLOW_BOMB_PIXELS = 89_478_485
KNOWN_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif")


class ImagesConfig(Section):
    """Image upload and hosting (/api/images, short links /i/<id>)."""

    public_url: str = Field(
        default="",
        description="Base URL put in image links, e.g. https://img.example; "
        "default: [server] public_url, else the address the upload came to.",
    )
    allowed_types: list[str] = Field(
        default=["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"],
        description="MIME types accepted; any of image/png, image/jpeg, image/gif, "
        "image/webp, image/avif (AVIF only where this Pillow can decode it).",
    )
    max_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1, description="Largest image file accepted, in bytes."
    )
    max_pixels: int = Field(
        default=50_000_000,
        ge=1,
        le=PILLOW_BOMB_PIXELS,
        description="Largest width x height of any frame; more is refused as a decompression "
        f"bomb. At most {PILLOW_BOMB_PIXELS:,}, Pillow's own limit (where it only warns).",
    )
    max_frames: int = Field(default=1000, ge=1, description="Most frames in an animation.")
    max_total_pixels: int = Field(
        default=500_000_000,
        ge=1,
        description="Most pixels of all frames of an animation together (each frame is a "
        "whole canvas to decode); at least max_pixels.",
    )
    decode_slots: int = Field(
        default=0,
        ge=0,
        description="Images decoded at once (uploads, thumbnails); each can hold a whole frame, "
        "up to 4 bytes x max_pixels, in memory. 0: one per CPU core.",
    )
    id_alphabet: str = Field(default=BASE62, description="Characters image ids are drawn from.")
    id_length: int = Field(
        default=8, ge=6, le=64, description="Length of new ids; grows when collisions pile up."
    )
    strip_gps: bool = Field(default=True, description="Remove EXIF GPS location on upload.")
    apply_orientation: bool = Field(
        default=True,
        description="Rotate JPEGs, still PNGs and lossless WebPs upright by their EXIF "
        "orientation on upload (re-encodes those).",
    )
    dedup: bool = Field(
        default=False,
        description="Give back the uploader's existing image when the same content comes again.",
    )
    open_uploads: bool = Field(
        default=False, description="Accept uploads without a token (scope images)."
    )
    rate_limit_per_minute: int = Field(
        default=120, ge=0, description="Uploads per token or client address per minute; 0: off."
    )
    rate_limit_burst: int = Field(
        default=30, ge=1, description="Uploads allowed at once before the rate applies."
    )
    default_expiry_seconds: int = Field(
        default=0, ge=0, description="Delete images this long after upload; 0: keep forever."
    )
    max_expiry_seconds: int = Field(
        default=0, ge=0, description="Longest expiry a client may ask for; 0: no cap."
    )
    sweep_interval_seconds: float = Field(
        default=60, gt=0, description="How often the server removes expired images."
    )
    accel_redirect: str = Field(
        default="",
        description="Behind nginx: an internal location prefix such as /_images/; image "
        "links then answer with X-Accel-Redirect and nginx sends the file.",
    )
    file_name_max: int = Field(
        default=255, ge=1, le=4096, description="Longest original file name kept (characters)."
    )

    @model_validator(mode="after")
    def _totals(self) -> ImagesConfig:
        if self.max_total_pixels < self.max_pixels:
            raise ValueError(
                f"max_total_pixels ({self.max_total_pixels}) must be at least max_pixels "
                f"({self.max_pixels})"
            )
        return self

    @field_validator("allowed_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        for mime in value:
            if mime not in KNOWN_TYPES:
                raise ValueError(f"unknown type {mime!r}; choose from {', '.join(KNOWN_TYPES)}")
        if not value:
            raise ValueError("allow at least one type")
        return value

    @field_validator("accel_redirect")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and not _PREFIX.fullmatch(value):
            raise ValueError(
                "must be a path that starts and ends with '/', of letters, digits, '_' and "
                "'-' (no '..'), e.g. /_images/"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.query
            or parts.fragment
            or any(c.isspace() for c in value)
        ):
            raise ValueError(
                "must be an http:// or https:// base URL without query or fragment, "
                "e.g. https://img.example"
            )
        return value

    @field_validator("id_alphabet")
    @classmethod
    def _alphabet(cls, value: str) -> str:
        if len(set(value)) != len(value) or len(value) < 2:
            raise ValueError("needs at least 2 distinct characters, none repeated")
        if any(not (c.isascii() and (c.isalnum() or c in "-_")) for c in value):
            raise ValueError("use only ASCII letters, digits, '-' and '_'")
        return value
