"""The library by folder, as on disk: each root on its own, its folders and their tracks.

Folders are read from the scanned files, never from the disk, and a client's path is a
relative path checked segment by segment before any query: no ``..``, no absolute path,
no empty or control characters. A path that names no scanned folder is a 404, so nothing
outside a root can be listed or played.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from homekeep.core.db import Database
from homekeep.core.errors import NotFound, UsageError
from homekeep.core.limits import Int64
from homekeep.music.library import TRACK_SELECT, Library, track_dict

MAX_PATH = 4096
MAX_FOLDER_TRACKS = 5000  # what "play this folder" queues at most, as the player's queue
RootId = Annotated[Int64, Query(description="A root's id (GET /api/music/roots).")]
FolderPath = Annotated[
    str, Query(max_length=MAX_PATH, description="A folder under the root, '/'-separated.")
]


def clean_path(path: str) -> str:
    """Return a client's folder path as stored ('a/b', '' for the root), or raise UsageError."""
    if path.startswith("/"):
        raise UsageError("a folder path is relative to its root, not absolute")
    text = path.rstrip("/")
    if not text:
        return ""
    if "\\" in text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError("a folder path has no backslashes or control characters")
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UsageError("a folder path is relative to its root: no '.', '..' or '//'")
    return "/".join(parts)


def _under(directory: str) -> tuple[str, str]:
    """The bounds of the paths under a folder: ``low < path < high`` (an index range)."""
    if not directory:
        return "", "\U0010ffff"
    return f"{directory}/", f"{directory}0"  # "0" sorts right after "/"


class Folders:
    """Folders and their tracks, read from the scan's files table."""

    def __init__(self, db: Database, library: Library) -> None:
        self.db = db
        self.library = library

    def _root(self, root_id: int) -> dict[str, Any]:
        row = self.db.query_one("SELECT id, path FROM roots WHERE id = ?", (root_id,))
        if row is None:
            raise NotFound(f"no music root with id {root_id}")
        return dict(row)

    def listing(self, root_id: int, path: str) -> dict[str, Any]:
        """A folder: its subfolders (with track counts and album covers) and its tracks."""
        root = self._root(root_id)
        directory = clean_path(path)
        low, high = _under(directory)
        counts: dict[str, int] = {}
        here = 0
        for row in self.db.query(
            "SELECT f.dir, COUNT(*) AS n FROM files f JOIN tracks t ON t.file_id = f.id"
            " WHERE f.root_id = ? AND f.path > ? AND f.path < ? GROUP BY f.dir",
            (root_id, low, high),
        ):
            if row["dir"] == directory:
                here += row["n"]
                continue
            child = row["dir"][len(low) :].split("/", 1)[0]
            counts[child] = counts.get(child, 0) + row["n"]
        if directory and not counts and not here:
            raise NotFound(f"no folder {directory!r} with music under root {root_id}")
        paths = {name: f"{low}{name}" for name in counts}
        covers = self._albums(root_id, list(paths.values()))
        folders = [
            {
                "name": name,
                "path": paths[name],
                "tracks": counts[name],
                **covers.get(paths[name], {}),
            }
            for name in sorted(counts, key=str.casefold)
        ]
        tracks = self.db.query(
            f"{TRACK_SELECT} WHERE f.root_id = ? AND f.dir = ? ORDER BY f.path",
            (root_id, directory),
        )
        parent = None if not directory else directory.rpartition("/")[0]
        return {
            "root": root,
            "path": directory,
            "parent": parent,
            "folders": folders,
            "tracks": self.library.with_lists([track_dict(t) for t in tracks]),
        }

    def _albums(self, root_id: int, dirs: list[str]) -> dict[str, dict[str, Any]]:
        """The album stored in each of ``dirs`` (its id and cover), where there is one."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(dirs), 500):
            chunk = dirs[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self.db.query(
                f"SELECT dir, id, cover_hash FROM albums WHERE root_id = ?"  # noqa: S608
                f" AND dir IN ({marks}) ORDER BY track_count",
                [root_id, *chunk],
            ):
                found[row["dir"]] = {"album_id": row["id"], "cover_hash": row["cover_hash"]}
        return found

    def tracks(self, root_id: int, path: str) -> dict[str, Any]:
        """Every track under a folder, in path order (to play it), up to MAX_FOLDER_TRACKS."""
        self._root(root_id)
        directory = clean_path(path)
        low, high = _under(directory)
        where = "WHERE f.root_id = ? AND f.path > ? AND f.path < ?"
        rows = self.db.query(
            f"{TRACK_SELECT} {where} ORDER BY f.path LIMIT ?",
            (root_id, low, high, MAX_FOLDER_TRACKS),
        )
        if directory and not rows:
            raise NotFound(f"no folder {directory!r} with music under root {root_id}")
        total = self.db.query_one(
            f"SELECT COUNT(*) FROM tracks t JOIN files f ON f.id = t.file_id {where}",  # noqa: S608
            (root_id, low, high),
        )
        items = self.library.with_lists([track_dict(t) for t in rows])
        return {"items": items, "total": int(total[0]) if total else 0}


def folder_routes(api: APIRouter, folders: Folders) -> None:
    """Add the by-folder routes to the music API."""

    @api.get("/folders")
    def folder(root: RootId, path: FolderPath = "") -> dict[str, Any]:
        """A folder of a root as on disk: its subfolders and its tracks."""
        return folders.listing(root, path)

    @api.get("/folders/tracks")
    def folder_tracks(root: RootId, path: FolderPath = "") -> dict[str, Any]:
        """Every track under a folder, in path order, to play it."""
        return folders.tracks(root, path)
