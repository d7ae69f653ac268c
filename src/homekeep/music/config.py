"""The [music] config section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from homekeep.core.config import Section


class MusicConfig(Section):
    """The music library: where it lives, how it is scanned, how covers are chosen."""

    roots: list[Path] = Field(
        default_factory=list,
        description="Folders scanned by 'homekeep music scan' when no ROOT is given.",
    )
    cover_priority: list[str] = Field(
        default_factory=lambda: ["cover.*", "folder.*", "front.*", "embedded"],
        description="Where an album's front cover comes from, first match wins: file name "
        "patterns in the album's folder (.jpg, .jpeg, .png, .webp) and 'embedded'.",
    )
    thumbnail_size: int = Field(
        default=300,
        ge=16,
        le=4096,
        description="Longest side of cover thumbnails in pixels (never upscaled).",
    )
    critical_tags: list[str] = Field(
        default_factory=lambda: ["title", "artist", "album"],
        description="Tags every track must have; 'music report missing-tags' lists the rest.",
    )
    min_cover_size: int = Field(
        default=500,
        ge=0,
        description="Covers smaller than this many pixels on their short side are reported.",
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes reading tags; 0 means one per CPU core, 1 reads in-process.",
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Rows written to the database per transaction during a scan.",
    )
