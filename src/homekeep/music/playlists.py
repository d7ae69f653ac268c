"""Playlists as .m3u8 files in one folder, read back from disk on every use.

A playlist is the file ``<playlists_dir>/<name>.m3u8`` (``.m3u`` files put there by
another program are read too): ``#EXTM3U``, then ``#EXTINF:<seconds>,<Artist> - <Title>``
and the track's path relative to the playlist file. Nothing is cached, so an edit made by
another program is seen on the next read. Each entry resolves to a track of the library
or is reported: not found, or outside the music roots (never served). Writes replace the
file atomically (temp file, fsync, rename); entries we cannot resolve are kept as written.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from homekeep.core.db import Database
from homekeep.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from homekeep.core.files import write_atomic

MAX_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 20_000
MAX_NAME = 120
SUFFIXES = (".m3u8", ".m3u")
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[/\\]")


@dataclass
class Entry:
    """One line of a playlist: the path as written, and what it resolved to."""

    path: str
    seconds: int | None = None
    label: str | None = None
    track_id: int | None = None
    problem: str | None = None


@dataclass
class Playlist:
    """A playlist file read from disk."""

    id: str
    name: str
    file: Path
    entries: list[Entry] = field(default_factory=list)
    changed: float = 0.0

    def track_ids(self) -> list[int]:
        """The tracks that resolved, in order (what a player plays)."""
        return [e.track_id for e in self.entries if e.track_id is not None]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tracks": len(self.track_ids()),
            "entries": len(self.entries),
            "problems": sum(1 for e in self.entries if e.problem),
            "duration": sum(e.seconds or 0 for e in self.entries if e.track_id is not None),
            "changed": self.changed,
        }

    def to_json(self) -> dict[str, Any]:
        entries = [
            {"position": n, "track_id": e.track_id, "path": e.path, "label": e.label,
             "seconds": e.seconds, "problem": e.problem}
            for n, e in enumerate(self.entries)
        ]  # fmt: skip
        return {**self.summary(), "items": entries}


def check_name(name: str) -> str:
    """A playlist name that is also a safe file name, or 422."""
    name = unicodedata.normalize("NFC", name.strip())
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a playlist name has 1 to {MAX_NAME} characters")
    if _BAD_NAME.search(name) or name.startswith("."):
        raise InvalidInput(
            "a playlist name cannot start with '.' or hold '/', '\\' or control characters"
        )
    return name


def decode(data: bytes) -> str:
    """The text of an m3u file: UTF-8 (with or without BOM), UTF-16 with a BOM, or cp1252."""
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge(f"a playlist is at most {MAX_BYTES // 1024 // 1024} MiB")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the playlist has a UTF-16 mark but is not UTF-16") from exc
    if b"\x00" in data:
        raise InvalidInput("this is not a playlist: it holds NUL bytes (a binary file?)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "the playlist is neither UTF-8 nor Windows-1252 text; save it as UTF-8 (.m3u8)"
        ) from exc


def parse(text: str) -> list[Entry]:
    """The entries of an m3u text; #EXTINF gives the next entry's length and label."""
    entries: list[Entry] = []
    pending: tuple[int | None, str | None] = (None, None)
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXTINF:"):
            length, _, label = line[8:].partition(",")
            try:
                seconds: int | None = max(0, int(float(length.split()[0])))
            except (ValueError, IndexError, OverflowError):
                seconds = None
            pending = (seconds, label.strip()[:500] or None)
            continue
        if line.startswith("#"):
            continue
        if len(entries) >= MAX_ENTRIES:
            raise PayloadTooLarge(f"a playlist holds at most {MAX_ENTRIES} entries")
        entries.append(Entry(line[:4096], *pending))
        pending = (None, None)
    return entries


def render(entries: Iterable[Entry]) -> str:
    """The m3u8 text of entries (each needs its path relative to the playlist folder)."""
    lines = ["#EXTM3U"]
    for e in entries:
        if e.seconds is not None or e.label:
            lines.append(f"#EXTINF:{e.seconds if e.seconds is not None else -1},{e.label or ''}")
        lines.append(e.path)
    return "\n".join(lines) + "\n"


def _forms(text: str) -> list[str]:
    """The NFC and NFD spellings of a path (file systems keep either)."""
    return list(dict.fromkeys((text, unicodedata.normalize("NFC", text),
                               unicodedata.normalize("NFD", text))))  # fmt: skip


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class TrackIndex:
    """Finds library tracks by path; the reads of one request (a thread's connection)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.roots = [
            (int(r["id"]), Path(r["path"])) for r in db.query("SELECT id, path FROM roots")
        ]

    def under_roots(self, path: Path) -> tuple[int, str] | None:
        """The root id and relative path of ``path``, or None when outside every root."""
        for root_id, root in self.roots:
            if path.is_relative_to(root):
                return root_id, path.relative_to(root).as_posix()
        return None

    def by_path(self, path: Path) -> int | None:
        """The track at ``path`` (a normalised absolute path under a root), or None."""
        found = self.under_roots(path)
        if found is None:
            return None
        forms = _forms(found[1])
        marks = ", ".join("?" * len(forms))
        row = self.db.query_one(
            "SELECT t.file_id FROM files f JOIN tracks t ON t.file_id = f.id"  # noqa: S608
            f" WHERE f.root_id = ? AND f.path IN ({marks})",
            (found[0], *forms),
        )
        return None if row is None else int(row[0])

    def by_suffix(self, parts: Sequence[str]) -> int | None:
        """The one track whose path ends with ``parts`` (at least the folder and file name)."""
        for count in range(len(parts), 1, -1):
            tail = "/".join(parts[-count:])
            ids: set[int] = set()
            for form in _forms(tail):
                ids.update(
                    int(r[0])
                    for r in self.db.query(
                        "SELECT t.file_id FROM files f JOIN tracks t ON t.file_id = f.id"
                        " WHERE f.path = ? OR f.path LIKE ? ESCAPE '\\' LIMIT 2",
                        (form, f"%/{_like(form)}"),
                    )
                )
            if len(ids) == 1:
                return ids.pop()
            if ids:
                return None  # ambiguous: a longer suffix did not match, a shorter one can't help
        return None

    def tracks(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Path, length, artist and title of tracks, by id."""
        out: dict[int, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for r in self.db.query(
                "SELECT t.file_id, t.duration, t.artist, t.title, r.path AS root, f.path"  # noqa: S608
                " FROM tracks t JOIN files f ON f.id = t.file_id"
                f" JOIN roots r ON r.id = f.root_id WHERE t.file_id IN ({marks})",
                chunk,
            ):
                title = r["title"] or Path(r["path"]).stem
                out[int(r["file_id"])] = {
                    "path": Path(r["root"]) / r["path"],
                    "seconds": round(r["duration"] or 0),
                    "label": f"{r['artist'] or 'Unknown Artist'} - {title}",
                }
        return out


def _normal(text: str, base: Path | None) -> tuple[Path | None, list[str]]:
    """An entry's absolute path (None when it cannot be placed) and its path components."""
    text = text.strip()
    if text.lower().startswith("file://"):
        text = text[7:]
    windows = bool(_WINDOWS_DRIVE.match(text)) or "\\" in text
    posix = text.replace("\\", "/")
    parts = [p for p in PurePosixPath(posix).parts if p not in ("/", ".")]
    if windows and _WINDOWS_DRIVE.match(text):
        return None, parts[1:]
    if posix.startswith("/"):
        return Path(os.path.normpath(posix)), parts
    if base is None:
        return None, parts
    return Path(os.path.normpath(base / posix)), parts


class Playlists:
    """The playlists folder: list, read, create, edit, import, delete.

    Edits are read-modify-write of one file: ``_lock`` keeps two requests of this server
    from interleaving them (the file is still replaced atomically for other programs).
    """

    def __init__(self, folder: Path, index: Callable[[], TrackIndex]) -> None:
        self.folder = folder
        self.index = index
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    def _file(self, playlist_id: str) -> Path:
        if (
            not playlist_id.lower().endswith(SUFFIXES)
            or _BAD_NAME.search(playlist_id)
            or playlist_id.startswith(".")
            or len(playlist_id) > MAX_NAME + 5
        ):
            raise NotFound(f"no playlist {playlist_id[:140]!r}")
        path = self.folder / playlist_id
        if not path.is_file():
            raise NotFound(f"no playlist {playlist_id[:140]!r}")
        return path

    def all(self) -> list[Playlist]:
        """Every playlist of the folder that can be read, by name."""
        if not self.folder.is_dir():
            return []
        files = sorted(
            (p for p in self.folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()
             and not p.name.startswith(".")),
            key=lambda p: p.stem.casefold(),
        )  # fmt: skip
        out = []
        for path in files[:10_000]:
            try:
                out.append(self.read(path.name))
            except (InvalidInput, PayloadTooLarge, NotFound, OSError):
                continue  # a broken file stays readable by `read`, which says why
        return out

    def summaries(self) -> list[dict[str, Any]]:
        """Every playlist with its counts."""
        return [p.summary() for p in self.all()]

    def read(self, playlist_id: str) -> Playlist:
        """A playlist with each entry resolved against the library."""
        path = self._file(playlist_id)
        try:
            stat = path.stat()
            if stat.st_size > MAX_BYTES:
                raise PayloadTooLarge(f"playlist {playlist_id!r} is over {MAX_BYTES // 2**20} MiB")
            data = path.read_bytes()
        except OSError as exc:
            raise NotFound(f"cannot read playlist {playlist_id!r}: {exc.strerror}") from exc
        entries = parse(decode(data))
        self._resolve(entries, path.parent)
        return Playlist(playlist_id, path.stem, path, entries, stat.st_mtime)

    def _resolve(self, entries: list[Entry], base: Path) -> None:
        index = self.index()
        for e in entries:
            full, _ = _normal(e.path, base)
            if full is None or index.under_roots(full) is None:
                e.problem = "outside the music roots"
                continue
            e.track_id = index.by_path(full)
            if e.track_id is None:
                e.problem = "not found in the library"

    # -- writing ---------------------------------------------------------------------------

    def _write(self, path: Path, entries: list[Entry]) -> None:
        write_atomic(path, render(entries).encode("utf-8"))

    def _track_entries(self, track_ids: Sequence[int], base: Path) -> list[Entry]:
        if len(track_ids) > MAX_ENTRIES:
            raise PayloadTooLarge(f"a playlist holds at most {MAX_ENTRIES} entries")
        known = self.index().tracks(track_ids)
        missing = [t for t in track_ids if t not in known]
        if missing:
            raise NotFound(f"no track with id {missing[0]}")
        out = []
        for t in track_ids:
            info = known[t]
            rel = os.path.relpath(info["path"], base)
            out.append(Entry(Path(rel).as_posix(), info["seconds"], info["label"], t))
        return out

    def create(self, name: str, track_ids: Sequence[int] = ()) -> Playlist:
        """A new playlist file ``<name>.m3u8``; 409 if one of that name exists."""
        name = check_name(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.m3u8"
        with self._lock:
            if any((self.folder / f"{name}{s}").exists() for s in SUFFIXES):
                raise Conflict(f"a playlist named {name!r} exists; pick another name")
            self._write(path, self._track_entries(track_ids, self.folder))
        return self.read(path.name)

    def edit(self, playlist_id: str, change: Callable[[list[Entry]], list[Entry]]) -> Playlist:
        """Apply ``change`` to the entries and write the file back."""
        with self._lock:
            current = self.read(playlist_id)
            entries = change(current.entries)
            if len(entries) > MAX_ENTRIES:
                raise PayloadTooLarge(f"a playlist holds at most {MAX_ENTRIES} entries")
            self._write(current.file, entries)
        return self.read(playlist_id)

    def add(
        self, playlist_id: str, track_ids: Sequence[int], position: int | None = None
    ) -> Playlist:
        """Insert tracks at ``position`` (default: the end)."""
        fresh = self._track_entries(track_ids, self.folder)

        def change(entries: list[Entry]) -> list[Entry]:
            at = len(entries) if position is None else min(max(position, 0), len(entries))
            return entries[:at] + fresh + entries[at:]

        return self.edit(playlist_id, change)

    def remove(self, playlist_id: str, positions: Iterable[int]) -> Playlist:
        """Drop the entries at ``positions``; 422 for a position that is not there."""
        gone = set(positions)

        def change(entries: list[Entry]) -> list[Entry]:
            bad = [p for p in gone if not 0 <= p < len(entries)]
            if bad:
                raise InvalidInput(f"no entry at position {min(bad)}; there are {len(entries)}")
            return [e for n, e in enumerate(entries) if n not in gone]

        return self.edit(playlist_id, change)

    def reorder(self, playlist_id: str, order: Sequence[int]) -> Playlist:
        """Put the entries in ``order`` (a permutation of the current positions)."""

        def change(entries: list[Entry]) -> list[Entry]:
            if sorted(order) != list(range(len(entries))):
                raise InvalidInput(
                    f"order must list each of the {len(entries)} positions exactly once"
                )
            return [entries[n] for n in order]

        return self.edit(playlist_id, change)

    def replace(self, playlist_id: str, track_ids: Sequence[int]) -> Playlist:
        """Make the playlist exactly these tracks."""
        fresh = self._track_entries(track_ids, self.folder)
        return self.edit(playlist_id, lambda _: fresh)

    def rename(self, playlist_id: str, name: str) -> Playlist:
        """Give a playlist a new name (its file is renamed; the content is unchanged)."""
        name = check_name(name)
        with self._lock:
            path = self._file(playlist_id)
            target = self.folder / f"{name}{path.suffix}"
            if target.name == path.name:
                return self.read(path.name)
            if any((self.folder / f"{name}{s}").exists() for s in SUFFIXES) and (
                target.name.casefold() != path.name.casefold()
            ):
                raise Conflict(f"a playlist named {name!r} exists; pick another name")
            path.rename(target)
        return self.read(target.name)

    def delete(self, playlist_id: str) -> None:
        with self._lock:
            self._file(playlist_id).unlink()

    def import_m3u(self, name: str, data: bytes) -> dict[str, Any]:
        """A new playlist from an m3u/m3u8 file's bytes; report the entries not found.

        Paths may be absolute or relative (to a music root), with ``/`` or ``\\``, in any
        Unicode normal form; an entry that is not a library track at its path is looked
        for by its trailing folders and file name. Entries outside the roots are refused.
        """
        name = check_name(name)
        entries = parse(decode(data))
        index = self.index()
        found: list[int] = []
        report: list[dict[str, Any]] = []
        for n, e in enumerate(entries):
            full, parts = _normal(e.path, None)
            track = None
            if full is not None:
                if index.under_roots(full) is None and full.exists():
                    report.append({"line": n, "path": e.path, "problem": "outside the music roots"})
                    continue
                track = index.by_path(full)
            else:
                for _, root in index.roots:
                    track = index.by_path(Path(os.path.normpath(root / "/".join(parts))))
                    if track is not None:
                        break
            if track is None and not any(p == ".." for p in parts):
                track = index.by_suffix(parts)
            if track is None:
                report.append({"line": n, "path": e.path, "problem": "not found in the library"})
            else:
                found.append(track)
        playlist = self.create(name, found)
        return {"playlist": playlist.summary(), "imported": len(found), "not_found": report}
