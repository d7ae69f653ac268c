"""Shared fixtures: real clips made once per session, and a helper to build libraries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homekeep.core.db import Database
from homekeep.music.config import MusicConfig
from homekeep.music.scanner import ScanResult
from homekeep.music.service import Service
from homekeep.music.store import MIGRATIONS
from tests.music import media


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One silent one-second clip per format, encoded once per test session."""
    return media.make_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def covers() -> dict[str, bytes]:
    """Cover images: large and small JPEGs, a PNG, and bytes that are no image."""
    return {
        "large": media.image_bytes(800, 800),
        "large_red": media.image_bytes(640, 640, color="red"),
        "small": media.image_bytes(120, 100),
        "png": media.image_bytes(600, 400, "PNG", color="green"),
        "corrupt": b"\xff\xd8\xff\xe0" + b"this is not really a jpeg" * 20,
    }


class Library:
    """A music folder under construction, and the music service over it."""

    def __init__(self, root: Path, data: Path, clips: dict[str, Path]) -> None:
        self.root = root
        self.data = data
        self.clips = clips
        self.db = Database(data / "music.sqlite", area="music", migrations=MIGRATIONS)

    def add(
        self,
        rel: str,
        fmt: str = "mp3",
        pictures: tuple[tuple[int, bytes], ...] = (),
        root: Path | None = None,
        **tags: Any,
    ) -> Path:
        """Write a tagged track at ``rel`` (its extension is added)."""
        target = (root or self.root) / f"{rel}.{media.extension(fmt)}"
        return media.write_track(self.clips[fmt], fmt, target, tags, pictures)

    def service(self, **config: Any) -> Service:
        """The service over this library, with [music] settings (one worker by default)."""
        return Service(MusicConfig(**{"workers": 1, **config}), self.data, self.db)

    def scan(self, *roots: Path, full: bool = False, **config: Any) -> ScanResult:
        return self.service(**config).scanner().scan(list(roots or (self.root,)), full=full)

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query(sql, params)]


@pytest.fixture
def library(tmp_path: Path, clips: dict[str, Path]) -> Iterator[Library]:
    root = tmp_path / "music"
    root.mkdir()
    lib = Library(root, tmp_path / "data", clips)
    yield lib
    lib.db.close()
