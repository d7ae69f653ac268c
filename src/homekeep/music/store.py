"""The music database: its schema (append-only migrations) and every write to it.

A scan and a root removal write through ``MusicStore``, one at a time (``lock``); the
reads the player and the reports make are in ``library.py`` and ``reports.py``.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from homekeep.core.db import Database, utcnow
from homekeep.core.errors import Conflict
from homekeep.music import catalog
from homekeep.music.artwork import ImageInfo
from homekeep.music.disk import Seen
from homekeep.music.kinds import kind_of
from homekeep.music.tagmap import TRACK_COLUMNS
from homekeep.music.tags import ReadResult

MIGRATIONS = (
    """
    CREATE TABLE roots (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at TEXT NOT NULL,
        scanned_at TEXT
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        dir TEXT NOT NULL,
        ext TEXT NOT NULL,
        kind TEXT NOT NULL,
        detected TEXT,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        hash TEXT,
        error TEXT,
        warning TEXT,
        read_at TEXT,
        UNIQUE (root_id, path)
    );
    CREATE TABLE tracks (
        file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        title TEXT,
        artist TEXT,
        album TEXT,
        album_artist TEXT,
        track INTEGER,
        track_total INTEGER,
        disc INTEGER,
        disc_total INTEGER,
        date TEXT,
        year INTEGER,
        genre TEXT,
        duration REAL,
        bitrate INTEGER,
        sample_rate INTEGER,
        channels INTEGER,
        bits_per_sample INTEGER,
        compilation INTEGER NOT NULL DEFAULT 0,
        release_type TEXT,
        mb_track_id TEXT,
        mb_recording_id TEXT,
        mb_album_id TEXT,
        mb_artist_id TEXT,
        mb_album_artist_id TEXT,
        mb_release_group_id TEXT,
        artist_id TEXT NOT NULL,
        album_artist_id TEXT NOT NULL,
        album_id TEXT NOT NULL
    );
    CREATE INDEX tracks_album ON tracks(album_id, disc, track);
    CREATE INDEX tracks_artist ON tracks(artist_id);
    CREATE TABLE pictures (
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        type INTEGER NOT NULL,
        mime TEXT NOT NULL,
        description TEXT NOT NULL,
        hash TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (file_id, position)
    );
    CREATE TABLE images (
        hash TEXT PRIMARY KEY,
        mime TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        thumb_size INTEGER NOT NULL,
        error TEXT
    );
    CREATE TABLE artists (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        mb_artist_id TEXT,
        track_count INTEGER NOT NULL,
        album_count INTEGER NOT NULL
    );
    CREATE INDEX artists_name ON artists(name COLLATE NOCASE);
    CREATE TABLE albums (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        title TEXT NOT NULL,
        album_artist TEXT NOT NULL,
        album_artist_id TEXT NOT NULL,
        year INTEGER,
        date TEXT,
        genre TEXT,
        compilation INTEGER NOT NULL,
        release_type TEXT,
        mb_album_id TEXT,
        mb_release_group_id TEXT,
        track_count INTEGER NOT NULL,
        disc_count INTEGER NOT NULL,
        duration REAL NOT NULL,
        root_id INTEGER NOT NULL,
        dir TEXT NOT NULL,
        cover_hash TEXT,
        cover_source TEXT
    );
    CREATE INDEX albums_artist ON albums(album_artist_id);
    CREATE INDEX albums_title ON albums(title COLLATE NOCASE);
    CREATE TABLE scans (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        roots TEXT NOT NULL,
        full INTEGER NOT NULL,
        workers INTEGER NOT NULL,
        counts TEXT NOT NULL,
        timings TEXT NOT NULL
    );
    """,
    # every artist and genre of a track (multi-valued tags), in tag order; position 0 is
    # the main artist (tracks.artist_id). Existing tracks get their one known value.
    """
    CREATE TABLE track_artists (
        file_id INTEGER NOT NULL REFERENCES tracks(file_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        artist_id TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (file_id, position)
    );
    CREATE INDEX track_artists_artist ON track_artists(artist_id);
    CREATE TABLE track_genres (
        file_id INTEGER NOT NULL REFERENCES tracks(file_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        genre TEXT NOT NULL,
        PRIMARY KEY (file_id, position)
    );
    CREATE INDEX track_genres_genre ON track_genres(genre COLLATE NOCASE);
    INSERT INTO track_artists (file_id, position, artist_id, name)
        SELECT file_id, 0, artist_id, COALESCE(artist, '[Unknown Artist]') FROM tracks;
    INSERT INTO track_genres (file_id, position, genre)
        SELECT file_id, 0, genre FROM tracks WHERE genre IS NOT NULL;
    """,
    # what each user (core's user ids) does with the library: stars, plays, the play queue,
    # and the Subsonic password (encrypted with the key file beside this database)
    """
    CREATE TABLE stars (
        user_id INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('track', 'album', 'artist')),
        item_id TEXT NOT NULL,
        starred_at TEXT NOT NULL,
        PRIMARY KEY (user_id, kind, item_id)
    );
    CREATE TABLE plays (
        user_id INTEGER NOT NULL,
        file_id INTEGER NOT NULL,
        count INTEGER NOT NULL,
        last_played TEXT NOT NULL,
        PRIMARY KEY (user_id, file_id)
    );
    CREATE INDEX plays_recent ON plays(user_id, last_played);
    CREATE TABLE play_queues (
        user_id INTEGER PRIMARY KEY,
        track_ids TEXT NOT NULL,
        current INTEGER,
        position_ms INTEGER NOT NULL,
        changed_at TEXT NOT NULL,
        changed_by TEXT NOT NULL
    );
    CREATE TABLE subsonic_passwords (
        user_id INTEGER PRIMARY KEY,
        secret BLOB NOT NULL,
        set_at TEXT NOT NULL
    );
    """,
    # when a file was first scanned (kept through changes and moves), and so when each
    # album came in: "recently added". Known files get the time they were last read.
    """
    ALTER TABLE files ADD COLUMN added_at TEXT;
    UPDATE files SET added_at = COALESCE(read_at,
        (SELECT r.added_at FROM roots r WHERE r.id = files.root_id));
    ALTER TABLE albums ADD COLUMN added_at TEXT;
    UPDATE albums SET added_at = (SELECT MIN(f.added_at) FROM tracks t
        JOIN files f ON f.id = t.file_id WHERE t.album_id = albums.id);
    CREATE INDEX albums_added ON albums(added_at);
    """,
)
_INSERT_TRACK = (
    f"INSERT OR REPLACE INTO tracks (file_id, {', '.join(TRACK_COLUMNS)},"  # noqa: S608
    f" artist_id, album_artist_id, album_id) VALUES ({', '.join('?' * (len(TRACK_COLUMNS) + 4))})"
)
_UPSERT_READ = (
    "INSERT INTO files (id, root_id, path, dir, ext, kind, detected, size, mtime_ns, ctime_ns,"
    " inode, hash, error, warning, read_at, added_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(id) DO UPDATE SET root_id = excluded.root_id, path = excluded.path,"
    " dir = excluded.dir, ext = excluded.ext, kind = excluded.kind,"
    " detected = excluded.detected, size = excluded.size, mtime_ns = excluded.mtime_ns,"
    " ctime_ns = excluded.ctime_ns, inode = excluded.inode, hash = excluded.hash,"
    " error = excluded.error, warning = excluded.warning, read_at = excluded.read_at"
)
_UPSERT_FILE = (
    "INSERT INTO files (id, root_id, path, dir, ext, kind, size, mtime_ns, ctime_ns, inode,"
    " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(id) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
    " ctime_ns = excluded.ctime_ns, inode = excluded.inode"
)
_MOVE_FILE = (
    "UPDATE files SET root_id = ?, path = ?, dir = ?, ext = ?, size = ?, mtime_ns = ?,"
    " ctime_ns = ?, inode = ? WHERE id = ?"
)
_CATALOG_TRACKS = (
    "SELECT t.album_id, t.album, t.year, t.date, t.genre, t.compilation, t.release_type,"
    " t.mb_album_id, t.mb_release_group_id, t.disc, t.disc_total, t.duration, t.file_id,"
    " f.root_id, f.dir, ta.name, t.artist_id, t.mb_artist_id, t.album_artist,"
    " t.album_artist_id, f.added_at FROM tracks t JOIN files f ON f.id = t.file_id"
    " LEFT JOIN track_artists ta ON ta.file_id = t.file_id AND ta.position = 0"
    " ORDER BY t.album_id, COALESCE(t.disc, 1), COALESCE(t.track, 0), f.path"
)


class MusicStore:
    """The library database and the lock its writers take; one per area folder."""

    def __init__(self, db: Database, folder: Path) -> None:
        self.db = db
        self.folder = folder

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the writers' lock (a scan, a root removal), or raise Conflict at once."""
        with (self.folder / "scan.lock").open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise Conflict("another music scan is running; wait for it to finish") from exc
            yield

    # -- roots ---------------------------------------------------------------------------

    def root_paths(self) -> list[Path]:
        return [Path(row["path"]) for row in self.db.query("SELECT path FROM roots")]

    def add_root(self, root: Path) -> int:
        """Return the id of a root, recording it first when it is new."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO roots (path, added_at) VALUES (?, ?) ON CONFLICT(path) DO NOTHING",
                (str(root), utcnow()),
            )
            row = conn.execute("SELECT id FROM roots WHERE path = ?", (str(root),)).fetchone()
        return int(row["id"])

    def remove_root(self, paths: set[str], cover_priority: list[str]) -> int | None:
        """Forget the root stored as one of ``paths``; return its file count (None: no root)."""
        with self.db.transaction() as conn:
            row = next(
                (r for r in conn.execute("SELECT id, path FROM roots") if r["path"] in paths), None
            )
            if row is None:
                return None
            files = conn.execute("SELECT COUNT(*) FROM files WHERE root_id = ?", (row["id"],))
            count = int(files.fetchone()[0])
            conn.execute("DELETE FROM roots WHERE id = ?", (row["id"],))
            self.rebuild_catalog(cover_priority)
        return count

    # -- files ---------------------------------------------------------------------------

    def known_files(self, root_ids: list[int]) -> dict[tuple[int, str], tuple[Any, ...]]:
        """Every file of the roots: (root id, path) -> (id, size, mtime_ns, hash, kind)."""
        marks = ", ".join("?" * len(root_ids))
        cur = self.db.connection().cursor()
        cur.row_factory = None  # plain tuples, for up to millions of rows
        cur.execute(
            f"SELECT root_id, path, id, size, mtime_ns, hash, kind FROM files"  # noqa: S608
            f" WHERE root_id IN ({marks})",
            root_ids,
        )
        return {(r[0], r[1]): r[2:] for r in cur}

    def track_row(self, file_id: int) -> tuple[Any, ...]:
        """The stored TRACK_COLUMNS of a file, or ("no track",)."""
        cur = self.db.connection().cursor()
        cur.row_factory = None
        found = cur.execute(
            f"SELECT {', '.join(TRACK_COLUMNS)} FROM tracks WHERE file_id = ?",  # noqa: S608
            (file_id,),
        ).fetchone()
        return ("no track",) if found is None else tuple(found)

    def next_file_id(self) -> int:
        """Return the first file id never used: a track id stays one track's for good."""
        return self._count(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'files'), 0),"
            " COALESCE((SELECT MAX(id) FROM files), 0)) + 1"
        )

    def write_files(
        self,
        fresh: list[Seen],
        changed: list[Seen],
        moved: list[Seen],
        deleted: dict[tuple[int, str], tuple[Any, ...]],
        batch_size: int,
    ) -> None:
        """Record the stat of every new, changed and moved file; drop deleted ones."""
        for ids in _batches([row[0] for row in deleted.values()], batch_size):
            with self.db.transaction() as conn:
                conn.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in ids])
        for batch in _batches(moved, batch_size):
            with self.db.transaction() as conn:
                conn.executemany(
                    _MOVE_FILE,
                    [(s.root_id, s.rel, s.dir, s.ext, s.size, s.mtime_ns, s.ctime_ns, s.inode,
                      s.id) for s in batch],
                )  # fmt: skip
        for batch in _batches([*fresh, *changed], batch_size):
            with self.db.transaction() as conn:
                now = utcnow()
                conn.executemany(_UPSERT_FILE, [_stat(s, now) for s in batch])

    def write_reads(self, results: list[ReadResult], by_id: dict[int, Seen]) -> None:
        """Write read files with their stat, tags and pictures in one transaction."""
        if not results:
            return
        now = utcnow()
        file_rows = []
        track_rows = []
        picture_rows: list[tuple[Any, ...]] = []
        artist_rows: list[tuple[Any, ...]] = []
        genre_rows: list[tuple[Any, ...]] = []
        for r in results:
            if r.vanished:
                continue
            s = by_id[r.file_id]
            warning = r.warning if r.error is None else None
            file_rows.append(
                (s.id, s.root_id, s.rel, s.dir, s.ext, "audio", r.detected, s.size, s.mtime_ns,
                 s.ctime_ns, s.inode, r.fingerprint, r.error, warning, now, now)
            )  # fmt: skip
            if r.error is None:
                track_rows.append((r.file_id, *r.row))
                artists = r.artists or [(r.row[-3], catalog.UNKNOWN_ARTIST)]
                artist_rows.extend((r.file_id, n, a[0], a[1]) for n, a in enumerate(artists))
                genre_rows.extend((r.file_id, n, g) for n, g in enumerate(r.genres))
                picture_rows.extend(
                    (r.file_id, n, p.type, p.mime or "", p.description or "", p.hash, p.size)
                    for n, p in enumerate(r.pictures)
                )
        known = [(r.file_id,) for r in results if by_id[r.file_id].known]
        with self.db.transaction() as conn:
            conn.executemany("DELETE FROM files WHERE id = ?", [
                (r.file_id,) for r in results if r.vanished
            ])  # fmt: skip
            conn.executemany(_UPSERT_READ, file_rows)
            conn.executemany("DELETE FROM tracks WHERE file_id = ?", known)
            conn.executemany("DELETE FROM pictures WHERE file_id = ?", known)
            conn.executemany(_INSERT_TRACK, track_rows)
            conn.executemany(
                "INSERT OR REPLACE INTO track_artists (file_id, position, artist_id, name)"
                " VALUES (?, ?, ?, ?)",
                artist_rows,
            )
            conn.executemany(
                "INSERT OR REPLACE INTO track_genres (file_id, position, genre) VALUES (?, ?, ?)",
                genre_rows,
            )
            conn.executemany(
                "INSERT INTO pictures (file_id, position, type, mime, description, hash, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                picture_rows,
            )

    # -- images --------------------------------------------------------------------------

    def image_files(self) -> list[Seen]:
        """Every image file under the roots, as found by earlier scans."""
        rows = self.db.query(
            "SELECT f.id, f.root_id, f.path, f.size, r.path AS root FROM files f"
            " JOIN roots r ON r.id = f.root_id WHERE f.kind = 'image'"
        )
        return [
            Seen(r["root_id"], r["path"], str(Path(r["root"]) / r["path"]), r["size"], 0, 0, 0,
                 r["id"], True)
            for r in rows
        ]  # fmt: skip

    def set_file_hashes(self, updates: list[tuple[str, int]]) -> None:
        """Record the content hash of folder images: (hash, file id)."""
        if updates:
            with self.db.transaction() as conn:
                conn.executemany("UPDATE files SET hash = ? WHERE id = ?", updates)

    def images_to_decode(self, thumb_size: int) -> list[str]:
        """Hashes of the images referred to but not decoded yet at this thumbnail size."""
        return [
            row[0]
            for row in self.db.query(
                "SELECT hash FROM pictures UNION SELECT hash FROM files"
                " WHERE kind = 'image' AND hash IS NOT NULL"
                " EXCEPT SELECT hash FROM images WHERE thumb_size = ?",
                (thumb_size,),
            )
        ]

    def save_images(self, infos: list[ImageInfo]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO images (hash, mime, bytes, width, height, thumb_size,"
                " error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (i.hash, i.mime, i.bytes, i.width, i.height, i.thumb_size, i.error)
                    for i in infos
                ],
            )

    def prune_images(self) -> list[str]:
        """Drop the rows of images nothing refers to any more; return their hashes."""
        with self.db.transaction() as conn:
            gone = [
                row[0]
                for row in conn.execute(
                    "SELECT hash FROM images EXCEPT SELECT hash FROM pictures"
                    " EXCEPT SELECT hash FROM files WHERE kind = 'image' AND hash IS NOT NULL"
                )
            ]
            conn.executemany("DELETE FROM images WHERE hash = ?", [(h,) for h in gone])
        return gone

    # -- the catalog and the scan record -------------------------------------------------

    def rebuild_catalog(self, cover_priority: list[str]) -> None:
        """Rebuild the artists and albums tables from the tracks, in one transaction.

        Called inside another transaction (a root removal), it joins that one.
        """
        with self.db.transaction() as conn:
            albums, artists = catalog.derive(
                _rows(conn, _CATALOG_TRACKS),
                _rows(conn, "SELECT artist_id, name, COUNT(*) FROM track_artists"
                      " GROUP BY artist_id, name"),
                _rows(conn, "SELECT root_id, dir, path, ext, hash FROM files"
                      " WHERE kind = 'image' AND hash IS NOT NULL ORDER BY path"),
                _rows(conn, "SELECT file_id, type, hash FROM pictures ORDER BY position"),
                cover_priority,
            )  # fmt: skip
            conn.execute("DELETE FROM albums")
            conn.executemany(
                "INSERT INTO albums (id, key, title, album_artist, album_artist_id, year, date,"
                " genre, compilation, release_type, mb_album_id, mb_release_group_id,"
                " track_count, disc_count, duration, root_id, dir, cover_hash, cover_source,"
                " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                albums,
            )
            conn.execute("DELETE FROM artists")
            conn.executemany(
                "INSERT INTO artists (id, name, mb_artist_id, track_count, album_count)"
                " VALUES (?, ?, ?, ?, ?)",
                artists,
            )

    def totals(self) -> dict[str, int]:
        """The library after a scan: files with errors and warnings, albums, artists, tracks."""
        return {
            "errors": self._count("SELECT COUNT(*) FROM files WHERE error IS NOT NULL"),
            "warnings": self._count("SELECT COUNT(*) FROM files WHERE warning IS NOT NULL"),
            "albums": self._count("SELECT COUNT(*) FROM albums"),
            "artists": self._count("SELECT COUNT(*) FROM artists"),
            "tracks": self._count("SELECT COUNT(*) FROM tracks"),
        }

    def record_scan(
        self,
        root_ids: list[int],
        started: str,
        roots: list[str],
        full: bool,
        workers: int,
        counts: dict[str, int],
        timings: dict[str, float],
    ) -> int:
        """Mark the roots scanned and record the scan; return its id."""
        with self.db.transaction() as conn:
            now = utcnow()
            conn.executemany(
                "UPDATE roots SET scanned_at = ? WHERE id = ?", [(now, r) for r in root_ids]
            )
            cur = conn.execute(
                "INSERT INTO scans (started_at, finished_at, roots, full, workers, counts,"
                " timings) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (started, now, json.dumps(roots), int(full), workers, json.dumps(counts),
                 json.dumps(timings)),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

    def _count(self, sql: str) -> int:
        row = self.db.connection().execute(sql).fetchone()
        return int(row[0])


def _stat(s: Seen, now: str) -> tuple[Any, ...]:
    """A file's row as _UPSERT_FILE takes it (``now`` counts only for a new file)."""
    return (s.id, s.root_id, s.rel, s.dir, s.ext, kind_of(s.ext), s.size, s.mtime_ns,
            s.ctime_ns, s.inode, now)  # fmt: skip


def _rows(conn: sqlite3.Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    """The rows of a query as plain tuples, run when first iterated (if ever)."""
    cur = conn.cursor()
    cur.row_factory = None  # tuples: the catalog loops over every track
    yield from cur.execute(sql)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
