"""Whose playlists: each user's own folder, and the shared playlists everyone may play.

``[music] playlists_dir`` holds one subfolder per user name (``ann/Road trip.m3u8``),
where that user's playlists live; the ``.m3u8`` files directly in it are shared: every
user sees and plays them (id ``shared:<file>``), and only a token without a user (the
CLI's, a script's) edits them, as it did before playlists had owners. Plain files in
plain folders, so other programs read and write them as they are.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from homekeep.core.errors import Forbidden
from homekeep.music.playlists import Playlist, Playlists, TrackIndex

SHARED = "shared:"


class PlaylistFolders:
    """One ``Playlists`` per folder, made once: its lock keeps its edits in turn."""

    def __init__(self, folder: Path, index: Callable[[], TrackIndex]) -> None:
        self.folder = folder
        self.index = index
        self._made: dict[Path, Playlists] = {}
        self._lock = threading.Lock()  # guards _made (the server's worker threads share it)

    def _at(self, folder: Path) -> Playlists:
        with self._lock:
            found = self._made.get(folder)
            if found is None:
                found = self._made[folder] = Playlists(folder, self.index)
            return found

    def of(self, user: str | None) -> UserLists:
        """The playlists a user sees (None: a token without a user, who edits the shared)."""
        shared = self._at(self.folder)
        if user is None:
            return UserLists(shared, None, None)
        # core's user names are [A-Za-z0-9][A-Za-z0-9._-]*: a plain folder name
        return UserLists(self._at(self.folder / user), shared, user)


class UserLists:
    """A user's own playlists, read and written, and the shared ones, read only."""

    def __init__(self, own: Playlists, shared: Playlists | None, user: str | None) -> None:
        self.own = own
        self.shared = shared
        self.user = user

    def _mine(self, playlist_id: str) -> str:
        """The id of an own playlist; a shared one is refused (403) for a user."""
        if self.shared is not None and playlist_id.startswith(SHARED):
            raise Forbidden(
                "a shared playlist is read-only for users; save its tracks as a playlist of yours"
            )
        return playlist_id

    @staticmethod
    def _as_shared(found: Playlist) -> Playlist:
        return dataclasses.replace(found, id=SHARED + found.id)

    def all(self) -> list[tuple[Playlist, bool]]:
        """Every playlist the user sees, own first: (playlist, shared)."""
        own = [(p, False) for p in self.own.all()]
        if self.shared is None:
            return own
        return own + [(self._as_shared(p), True) for p in self.shared.all()]

    def summaries(self) -> list[dict[str, Any]]:
        return [{**p.summary(), "shared": shared} for p, shared in self.all()]

    def read(self, playlist_id: str) -> Playlist:
        if self.shared is not None and playlist_id.startswith(SHARED):
            return self._as_shared(self.shared.read(playlist_id[len(SHARED) :]))
        return self.own.read(playlist_id)

    def is_shared(self, playlist_id: str) -> bool:
        return self.shared is not None and playlist_id.startswith(SHARED)

    def create(self, name: str, track_ids: Sequence[int] = ()) -> Playlist:
        return self.own.create(name, track_ids)

    def import_m3u(self, name: str, data: bytes) -> dict[str, Any]:
        return self.own.import_m3u(name, data)

    def add(
        self, playlist_id: str, track_ids: Sequence[int], position: int | None = None
    ) -> Playlist:
        return self.own.add(self._mine(playlist_id), track_ids, position)

    def remove(self, playlist_id: str, positions: Sequence[int]) -> Playlist:
        return self.own.remove(self._mine(playlist_id), positions)

    def reorder(self, playlist_id: str, order: Sequence[int]) -> Playlist:
        return self.own.reorder(self._mine(playlist_id), order)

    def replace(self, playlist_id: str, track_ids: Sequence[int]) -> Playlist:
        return self.own.replace(self._mine(playlist_id), track_ids)

    def rename(self, playlist_id: str, name: str) -> Playlist:
        return self.own.rename(self._mine(playlist_id), name)

    def delete(self, playlist_id: str) -> None:
        self.own.delete(self._mine(playlist_id))
