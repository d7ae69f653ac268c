"""Open the music service of an area context: config, database, artwork, queries, scans."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from homekeep.core.area import AreaContext
from homekeep.core.db import Database
from homekeep.core.errors import NotFound
from homekeep.music.artwork import ArtworkStore
from homekeep.music.config import MusicConfig
from homekeep.music.library import Library
from homekeep.music.playlists import TrackIndex
from homekeep.music.reports import Reports, parse_fields
from homekeep.music.roots import resolve_roots, stored_forms
from homekeep.music.scanner import Scanner
from homekeep.music.store import MIGRATIONS, MusicStore
from homekeep.music.userlists import PlaylistFolders

if TYPE_CHECKING:
    from homekeep.music.subsonic.passwords import SubsonicPasswords

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
Size = Literal["full", "thumb"]


@dataclass
class Service:
    """What the commands, the API and any daemon share: one library and its artwork."""

    config: MusicConfig
    folder: Path
    db: Database
    store: MusicStore = field(init=False)
    artwork: ArtworkStore = field(init=False)
    library: Library = field(init=False)
    reports: Reports = field(init=False)
    playlists: PlaylistFolders = field(init=False)

    def __post_init__(self) -> None:
        self.store = MusicStore(self.db, self.folder)
        self.artwork = ArtworkStore(self.folder / "images")
        self.library = Library(self.db)
        self.reports = Reports(self.db)
        folder = self.config.playlists_dir or self.folder / "playlists"
        self.playlists = PlaylistFolders(folder.expanduser(), lambda: TrackIndex(self.db))

    def close(self) -> None:
        self.db.close()

    def subsonic_passwords(self) -> SubsonicPasswords:
        """The users' Subsonic passwords, encrypted with ``subsonic.key`` beside the database."""
        from homekeep.music.subsonic.passwords import SubsonicPasswords  # cryptography: slow

        return SubsonicPasswords(self.db, self.folder / "subsonic.key")

    # -- scans ---------------------------------------------------------------------------

    def scanner(self) -> Scanner:
        """A scanner over this library: ``scanner().scan(scan_roots(...))``."""
        return Scanner(self.store, self.artwork, self.config)

    def scan_roots(self, given: Sequence[Path] = ()) -> list[Path]:
        """The roots a scan covers: those given, else [music] roots, else those scanned before."""
        wanted = list(given) or list(self.config.roots)
        if not wanted:
            wanted = [Path(row["path"]) for row in self.library.roots()]
        return resolve_roots(wanted)

    def remove_root(self, path: Path) -> int:
        """Forget a root and everything found under it; return how many files it held."""
        with self.store.lock():
            count = self.store.remove_root(stored_forms(path), self.config.cover_priority)
        if count is None:
            raise NotFound(f"{path} is not a music root; see 'homekeep music roots list'")
        return count

    # -- what the reports and the player read --------------------------------------------

    def tag_fields(self, text: str | None) -> list[str]:
        """The tags named in ``text`` (comma-separated), else [music] critical_tags."""
        return parse_fields(text, self.config.critical_tags)

    def min_cover_size(self, given: int | None) -> int:
        """The smallest acceptable cover side: ``given``, else [music] min_cover_size."""
        return self.config.min_cover_size if given is None else given

    def image_file(self, digest: str, size: Size) -> tuple[Path, str]:
        """The file of a stored image (the original or its thumbnail) and its media type."""
        if not _HASH_RE.match(digest):
            raise NotFound(f"no image {digest!r}")
        info = self.library.image(digest)
        if size == "thumb":
            path = self.artwork.thumb_path(digest)
            if info["error"] or not path.is_file():
                raise NotFound(f"image {digest} has no thumbnail: {info['error'] or 'not made'}")
            return path, "image/jpeg"
        path = self.artwork.full_path(digest)
        if not path.is_file():
            raise NotFound(f"image {digest} is missing from the store; rescan with --full")
        return path, str(info["mime"])

    def track_file(self, track_id: int) -> tuple[Path, str | None, int | None]:
        """A track's file, its detected format and its bit rate in kbit/s."""
        row = self.db.query_one(
            "SELECT r.path AS root, f.path, f.detected, t.bitrate FROM tracks t"
            " JOIN files f ON f.id = t.file_id JOIN roots r ON r.id = f.root_id"
            " WHERE t.file_id = ?",
            (track_id,),
        )
        if row is None:
            raise NotFound(f"no track with id {track_id}")
        path = Path(row["root"]) / row["path"]
        if not path.is_file():
            raise NotFound(f"the file of track {track_id} is gone; rescan the library")
        kbps = row["bitrate"] // 1000 if row["bitrate"] else None
        return path, row["detected"], kbps

    def album_cover(self, album_id: str, size: Size) -> tuple[Path, str]:
        """The file of an album's front cover and its media type."""
        found = self.library.album(album_id)
        if not found["cover_hash"]:
            raise NotFound(f"album {album_id!r} has no front cover")
        return self.image_file(found["cover_hash"], size)


def open_service(ctx: AreaContext) -> Service:
    """Load the config and open (and migrate) the library database."""
    return Service(ctx.config(MusicConfig), ctx.dir, ctx.database(MIGRATIONS))
