"""The [music] config section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from homekeep.core.config import Section

TAG_FIELDS = (
    "title", "artist", "album", "album_artist", "track", "disc", "date", "year", "genre",
)  # fmt: skip


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

    playlists_dir: Path | None = Field(
        default=None,
        description="Folder of the .m3u8 playlists. Default: <data_dir>/music/playlists.",
    )
    max_transcodes: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Transcodes (ffmpeg processes) running at once; more get a 503.",
    )

    @field_validator("critical_tags")
    @classmethod
    def _known_tags(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in TAG_FIELDS:
                raise ValueError(f"unknown tag {name!r}; choose from: {', '.join(TAG_FIELDS)}")
        if not value:
            raise ValueError("name at least one tag")
        return value

    @field_validator("cover_priority")
    @classmethod
    def _cover_sources(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one cover source, e.g. ['cover.*', 'embedded']")
        for source in value:
            if not source.strip() or "/" in source:
                raise ValueError(
                    f"cover source {source!r} must be 'embedded' or a file name pattern "
                    "like 'cover.*'"
                )
        return value
