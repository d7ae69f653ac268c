"""The library scan: walk, stat and diff, read tags, store artwork, write the database.

An unchanged library costs one ``stat`` per file: the known files of a root are loaded
in one query and compared by size and mtime_ns in memory. Tags are read only for new
and changed files (all files with ``full``), in a process pool fed chunk by chunk while
the parent writes finished chunks to the database in batched transactions.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from homekeep.core.db import Database, utcnow
from homekeep.core.errors import Conflict, NotFound, UsageError
from homekeep.core.progress import Display, progress
from homekeep.music import catalog
from homekeep.music.config import MusicConfig
from homekeep.music.files import Seen, compare, walk
from homekeep.music.images import MAX_IMAGE_BYTES, ImageInfo, ImageStore
from homekeep.music.kinds import AUDIO_EXTENSIONS, COVER_EXTENSIONS, extension, kind_of
from homekeep.music.tags import (
    SAMPLE_BYTES,
    TRACK_COLUMNS,
    ReadResult,
    fingerprint,
    read_batch,
    read_file,
)

STEPS = ("walk", "stat_diff", "tag_read", "artwork", "database")
CHUNK = 64
IN_FLIGHT = 16  # chunks queued per worker, so they never wait while the parent writes
_MIN_POOL_FILES = 2 * CHUNK  # fewer files than this: a pool costs more than it saves
_INSERT_TRACK = (
    f"INSERT OR REPLACE INTO tracks (file_id, {', '.join(TRACK_COLUMNS)},"  # noqa: S608
    f" artist_id, album_artist_id, album_id) VALUES ({', '.join('?' * (len(TRACK_COLUMNS) + 4))})"
)
_UPSERT_READ = (
    "INSERT INTO files (id, root_id, path, dir, ext, kind, detected, size, mtime_ns, ctime_ns,"
    " inode, hash, error, warning, read_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(id) DO UPDATE SET root_id = excluded.root_id, path = excluded.path,"
    " dir = excluded.dir, ext = excluded.ext, kind = excluded.kind,"
    " detected = excluded.detected, size = excluded.size, mtime_ns = excluded.mtime_ns,"
    " ctime_ns = excluded.ctime_ns, inode = excluded.inode, hash = excluded.hash,"
    " error = excluded.error, warning = excluded.warning, read_at = excluded.read_at"
)
_UPSERT_FILE = (
    "INSERT INTO files (id, root_id, path, dir, ext, kind, size, mtime_ns, ctime_ns, inode)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(id) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
    " ctime_ns = excluded.ctime_ns, inode = excluded.inode"
)


@dataclass
class ScanResult:
    """What a scan did: counts a user (and a test) can check, and the time of each step."""

    scan_id: int
    roots: list[str]
    full: bool
    workers: int
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "scan_id": self.scan_id,
            "roots": self.roots,
            "full": self.full,
            "workers": self.workers,
            "counts": self.counts,
            "timings": self.timings,
            "total_seconds": round(sum(self.timings.values()), 3),
        }


class _Clock:
    """Wall time per step; a step can be entered many times and its time adds up."""

    def __init__(self) -> None:
        self.times = dict.fromkeys(STEPS, 0.0)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] += time.perf_counter() - start


def resolve_roots(paths: list[Path]) -> list[Path]:
    """Return the roots as absolute paths; every one must be an existing folder."""
    if not paths:
        raise UsageError(
            "no music roots to scan: pass one or more ROOT folders, "
            "or set roots = [...] in the [music] section of the config"
        )
    resolved: list[Path] = []
    for path in paths:
        full = path.expanduser().resolve()
        if not full.exists():
            raise NotFound(f"music root {path} does not exist; check the path (is it mounted?)")
        if not full.is_dir():
            raise UsageError(f"music root {path} is not a folder; pass the folder that holds it")
        if full not in resolved:
            resolved.append(full)
    for a in resolved:
        for b in resolved:
            if a != b and a.is_relative_to(b):
                raise UsageError(f"music root {a} is inside root {b}; pass only {b}")
    return resolved


def remove_root(db: Database, folder: Path, config: MusicConfig, path: Path) -> int:
    """Forget a root and everything found under it; return how many files it held."""
    with _scan_lock(folder), db.transaction() as conn:
        wanted = {str(path), str(path.expanduser().resolve())}
        row = next(
            (r for r in conn.execute("SELECT id, path FROM roots") if r["path"] in wanted), None
        )
        if row is None:
            raise NotFound(f"{path} is not a music root; see 'homekeep music roots list'")
        files = conn.execute("SELECT COUNT(*) FROM files WHERE root_id = ?", (row["id"],))
        count = int(files.fetchone()[0])
        conn.execute("DELETE FROM roots WHERE id = ?", (row["id"],))
        catalog.rebuild(conn, config.cover_priority)
    return count


@contextmanager
def _scan_lock(folder: Path) -> Iterator[None]:
    with (folder / "scan.lock").open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Conflict("another music scan is running; wait for it to finish") from exc
        yield


class Scanner:
    """Scans roots into one music database."""

    def __init__(self, db: Database, folder: Path, config: MusicConfig) -> None:
        self.db = db
        self.folder = folder
        self.config = config
        self.images = ImageStore(folder / "images")
        self.workers = config.workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def scan(
        self,
        roots: list[Path],
        *,
        full: bool = False,
        display: Display | None = None,
        pool: ProcessPoolExecutor | None = None,
    ) -> ScanResult:
        """Scan the roots (absolute folders) and return what changed and how long it took.

        ``pool``: worker processes started beforehand (see ``prestart_pool``), used for
        reading tags and decoding images instead of starting new ones.
        """
        self._pool = pool
        with _scan_lock(self.folder):
            if display is None:
                with progress(enabled=False) as silent:
                    return self._scan(roots, full, silent)
            return self._scan(roots, full, display)

    def _scan(self, roots: list[Path], full: bool, display: Display) -> ScanResult:
        started = utcnow()
        clock = _Clock()
        counts = dict.fromkeys(
            (
                "files",
                "audio",
                "new",
                "changed",
                "moved",
                "deleted",
                "unchanged",
                "tags_read",
                "errors",
                "images_new",
                "albums",
                "artists",
                "tracks",
            ),
            0,
        )
        root_ids = [self._root_id(root) for root in roots]
        unreadable: list[tuple[int, str]] = []
        with clock.step("walk"):
            walk_bar = display.task("finding files")
            entries = [
                entry
                for root_id, root in zip(root_ids, roots, strict=True)
                for entry in walk(root_id, root, walk_bar, unreadable)
            ]
            walk_bar.update(total=len(entries))
        with clock.step("stat_diff"):
            stat_bar = display.task("checking files", total=len(entries))
            known = self._known(root_ids)
            diff = compare(entries, known, full, stat_bar)
            deleted = known  # what is left was not found on disk...
            for root_id, prefix in unreadable:  # ...or sits in a folder we could not list
                for key in [k for k in deleted if k[0] == root_id and k[1].startswith(prefix)]:
                    del deleted[key]
            new, changed = diff.new, diff.changed
            moved = self._moves(new, deleted)
        counts.update(
            files=diff.files,
            audio=diff.audio,
            new=len(new) - len(moved),
            changed=len(changed),
            moved=len(moved),
            deleted=len(deleted),
            unchanged=diff.unchanged,
            unreadable_folders=len(unreadable),
        )
        moved_ids = {item.id for item in moved}
        fresh = [item for item in new if item.id not in moved_ids]
        next_id = self._next_id()
        for item in fresh:
            item.id, next_id = next_id, next_id + 1
        to_read = [s for s in (*fresh, *changed, *diff.reread) if kind_of(s.ext) == "audio"]
        dirty = bool(fresh or changed or moved or deleted or full)
        with clock.step("database"):
            # audio files get their row with their tags, in one write, after reading
            self._write_files(
                [s for s in fresh if kind_of(s.ext) != "audio"],
                [s for s in changed if kind_of(s.ext) != "audio"],
                moved,
                deleted,
            )
        read_bar = display.task("reading tags", total=len(to_read))
        errors, readers = self._read_tags(to_read, clock, read_bar)
        counts["tags_read"] = len(to_read)
        with clock.step("artwork"):
            art_bar = display.task("artwork")
            counts["images_new"] = self._artwork([*fresh, *changed, *moved], full, art_bar)
            counts["images_removed"] = self._prune_images() if dirty else 0
        with clock.step("database"):
            if dirty or counts["images_new"]:
                with self.db.transaction() as conn:
                    catalog.rebuild(conn, self.config.cover_priority)
            counts["errors"] = self._count("SELECT COUNT(*) FROM files WHERE error IS NOT NULL")
            counts["warnings"] = self._count("SELECT COUNT(*) FROM files WHERE warning IS NOT NULL")
            counts["failed_reads"] = errors
            counts["albums"] = self._count("SELECT COUNT(*) FROM albums")
            counts["artists"] = self._count("SELECT COUNT(*) FROM artists")
            counts["tracks"] = self._count("SELECT COUNT(*) FROM tracks")
            timings = {k: round(v, 4) for k, v in clock.times.items()}
            with self.db.transaction() as conn:
                now = utcnow()
                conn.executemany(
                    "UPDATE roots SET scanned_at = ? WHERE id = ?", [(now, r) for r in root_ids]
                )
                cur = conn.execute(
                    "INSERT INTO scans (started_at, finished_at, roots, full, workers, counts,"
                    " timings) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        started,
                        now,
                        json.dumps([str(r) for r in roots]),
                        int(full),
                        readers,
                        json.dumps(counts),
                        json.dumps(timings),
                    ),
                )
                scan_id = int(cur.lastrowid or 0)
        return ScanResult(scan_id, [str(r) for r in roots], full, readers, counts, timings)

    @contextmanager
    def _executor(self) -> Iterator[ProcessPoolExecutor]:
        """The pool started beforehand (left running for its owner), else a new one."""
        if self._pool is not None:
            yield self._pool
            return
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=_pool_context()) as pool:
            yield pool

    # -- walk and diff -------------------------------------------------------------------

    def _root_id(self, root: Path) -> int:
        with self.db.transaction() as conn:
            for row in conn.execute("SELECT path FROM roots"):
                other = Path(row["path"])
                if other != root and (root.is_relative_to(other) or other.is_relative_to(root)):
                    raise UsageError(
                        f"music root {root} overlaps the known root {other}; "
                        "remove one with 'homekeep music roots remove PATH'"
                    )
            conn.execute(
                "INSERT INTO roots (path, added_at) VALUES (?, ?) ON CONFLICT(path) DO NOTHING",
                (str(root), utcnow()),
            )
            row = conn.execute("SELECT id FROM roots WHERE path = ?", (str(root),)).fetchone()
        return int(row["id"])

    def _known(self, root_ids: list[int]) -> dict[tuple[int, str], tuple[Any, ...]]:
        marks = ", ".join("?" * len(root_ids))
        cur = self.db.connection().cursor()
        cur.row_factory = None  # plain tuples, for up to millions of rows
        cur.execute(
            f"SELECT root_id, path, id, size, mtime_ns, hash, kind FROM files"  # noqa: S608
            f" WHERE root_id IN ({marks})",
            root_ids,
        )
        return {(r[0], r[1]): r[2:] for r in cur}

    def _moves(
        self, new: list[Seen], deleted: dict[tuple[int, str], tuple[Any, ...]]
    ) -> list[Seen]:
        """Recognise new paths that are deleted files moved, so they keep their id and data.

        A move needs the same size and the same content hash. Files over 2 MiB are hashed
        by sample (size, first and last MiB), so for them the new file's tags and stream
        facts are read too and must equal the stored ones: a look-alike that differs only
        in the middle (tags behind a big picture block) is a new file, never a move that
        would keep the deleted file's tags.
        """
        by_size: dict[int, list[tuple[tuple[int, str], str]]] = {}
        for key, (_, size, _, digest, kind) in deleted.items():
            if digest and kind == "audio":
                by_size.setdefault(size, []).append((key, digest))
        moved: list[Seen] = []
        if not by_size:
            return moved
        for item in new:
            candidates = by_size.get(item.size)
            if not candidates or kind_of(item.ext) != "audio":
                continue
            try:
                digest = fingerprint(Path(item.path), item.size)
            except OSError:
                continue
            row: tuple[Any, ...] | None = None
            for n, (key, old_digest) in enumerate(candidates):
                if old_digest != digest:
                    continue
                if item.size > 2 * SAMPLE_BYTES:
                    if row is None:
                        row = self._read_row(item)
                    if row != self._stored_row(deleted[key][0]):
                        continue
                item.id, item.known = deleted.pop(key)[0], True
                del candidates[n]
                moved.append(item)
                break
        return moved

    def _read_row(self, item: Seen) -> tuple[Any, ...]:
        result = read_file(0, item.path, item.size, self.images)
        if result.error or result.vanished:
            return ("unreadable",)
        return tuple(result.row[: len(TRACK_COLUMNS)])

    def _stored_row(self, file_id: int) -> tuple[Any, ...]:
        cur = self.db.connection().cursor()
        cur.row_factory = None
        found = cur.execute(
            f"SELECT {', '.join(TRACK_COLUMNS)} FROM tracks WHERE file_id = ?",  # noqa: S608
            (file_id,),
        ).fetchone()
        return ("no track",) if found is None else tuple(found)

    def _next_id(self) -> int:
        """Return the first file id never used: a track id stays one track's for good."""
        return self._count(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'files'), 0),"
            " COALESCE((SELECT MAX(id) FROM files), 0)) + 1"
        )

    def _count(self, sql: str) -> int:
        row = self.db.connection().execute(sql).fetchone()
        return int(row[0])

    def _batches(self, items: list[Any]) -> Iterator[list[Any]]:
        size = self.config.batch_size
        for start in range(0, len(items), size):
            yield items[start : start + size]

    def _write_files(
        self,
        fresh: list[Seen],
        changed: list[Seen],
        moved: list[Seen],
        deleted: dict[tuple[int, str], tuple[Any, ...]],
    ) -> None:
        """Record the stat of every new, changed and moved file; drop deleted ones."""
        for batch in self._batches([row[0] for row in deleted.values()]):
            with self.db.transaction() as conn:
                conn.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in batch])
        for batch in self._batches(moved):
            with self.db.transaction() as conn:
                conn.executemany(
                    "UPDATE files SET root_id = ?, path = ?, dir = ?, ext = ?, size = ?,"
                    " mtime_ns = ?, ctime_ns = ?, inode = ? WHERE id = ?",
                    [
                        (
                            s.root_id,
                            s.rel,
                            s.dir,
                            s.ext,
                            s.size,
                            s.mtime_ns,
                            s.ctime_ns,
                            s.inode,
                            s.id,
                        )
                        for s in batch
                    ],
                )
        for batch in self._batches([*fresh, *changed]):
            with self.db.transaction() as conn:
                conn.executemany(
                    _UPSERT_FILE,
                    [
                        (
                            s.id,
                            s.root_id,
                            s.rel,
                            s.dir,
                            s.ext,
                            kind_of(s.ext),
                            s.size,
                            s.mtime_ns,
                            s.ctime_ns,
                            s.inode,
                        )
                        for s in batch
                    ],
                )

    # -- tags ----------------------------------------------------------------------------

    def _read_tags(self, items: list[Seen], clock: _Clock, bar: Any) -> tuple[int, int]:
        """Read tags of ``items`` and store them; return (files that failed, processes used)."""
        jobs = [(s.id, s.path, s.size) for s in items]
        chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
        by_id = {s.id: s for s in items}
        pending: list[ReadResult] = []
        errors = 0

        def take(results: list[ReadResult]) -> None:
            nonlocal errors
            pending.extend(results)
            errors += sum(1 for r in results if r.error)
            bar.advance(len(results))
            if len(pending) >= self.config.batch_size:
                with clock.step("database"):
                    self._write_tags(pending, by_id)
                pending.clear()

        read_start = time.perf_counter()
        db_before = clock.times["database"]
        images_root = str(self.images.root)
        readers = 1 if self.workers <= 1 or len(jobs) < _MIN_POOL_FILES else self.workers
        if readers == 1:
            for chunk in chunks:
                take(read_batch(chunk, images_root))
        else:
            with self._executor() as pool:
                queue = iter(chunks)
                running: set[Future[list[ReadResult]]] = set()
                for chunk in queue:
                    running.add(pool.submit(read_batch, chunk, images_root))
                    if len(running) >= self.workers * IN_FLIGHT:
                        break
                while running:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        next_chunk = next(queue, None)
                        if next_chunk is not None:
                            running.add(pool.submit(read_batch, next_chunk, images_root))
                        take(future.result())
        with clock.step("database"):
            self._write_tags(pending, by_id)
        elapsed = time.perf_counter() - read_start
        clock.times["tag_read"] += elapsed - (clock.times["database"] - db_before)
        return errors, readers

    def _write_tags(self, results: list[ReadResult], by_id: dict[int, Seen]) -> None:
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
            warning = None
            if r.error is None:
                warnings = [w for w in (_warning(s.ext, r.detected), r.warning) if w]
                warning = "; ".join(warnings) or None
            file_rows.append(
                (s.id, s.root_id, s.rel, s.dir, s.ext, "audio", r.detected, s.size, s.mtime_ns,
                 s.ctime_ns, s.inode, r.fingerprint, r.error, warning, now)
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

    # -- artwork -------------------------------------------------------------------------

    def _artwork(self, touched: list[Seen], full: bool, bar: Any) -> int:
        """Store new folder covers, then decode and thumbnail every image not done yet."""
        patterns = [p.lower() for p in self.config.cover_priority if p != catalog.EMBEDDED]
        covers = [
            s
            for s in touched
            if s.ext in COVER_EXTENSIONS
            and any(fnmatchcase(s.rel.rpartition("/")[2].lower(), p) for p in patterns)
        ]
        if full:
            covers = [
                s
                for s in self._all_image_files()
                if any(fnmatchcase(s.rel.rpartition("/")[2].lower(), p) for p in patterns)
            ]
        updates = []
        for s in covers:
            try:
                if s.size > MAX_IMAGE_BYTES:
                    continue
                updates.append((self.images.save(Path(s.path).read_bytes()), s.id))
            except OSError:
                continue
        if updates:
            with self.db.transaction() as conn:
                conn.executemany("UPDATE files SET hash = ? WHERE id = ?", updates)
        size = self.config.thumbnail_size
        todo = [
            row[0]
            for row in self.db.query(
                "SELECT hash FROM pictures UNION SELECT hash FROM files"
                " WHERE kind = 'image' AND hash IS NOT NULL"
                " EXCEPT SELECT hash FROM images WHERE thumb_size = ?",
                (size,),
            )
        ]
        bar.update(total=len(todo))
        infos: list[ImageInfo] = []
        if len(todo) > 8 and self.workers > 1:
            with self._executor() as pool:
                for info in pool.map(
                    _process_image,
                    todo,
                    [str(self.images.root)] * len(todo),
                    [size] * len(todo),
                    chunksize=8,
                ):
                    infos.append(info)
                    bar.advance()
        else:
            for digest in todo:
                infos.append(self.images.process(digest, size))
                bar.advance()
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO images (hash, mime, bytes, width, height, thumb_size,"
                " error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (i.hash, i.mime, i.bytes, i.width, i.height, i.thumb_size, i.error)
                    for i in infos
                ],
            )
        return len(infos)

    def _prune_images(self) -> int:
        """Drop images no track and no folder file refers to any more, rows and files."""
        with self.db.transaction() as conn:
            gone = [
                row[0]
                for row in conn.execute(
                    "SELECT hash FROM images EXCEPT SELECT hash FROM pictures"
                    " EXCEPT SELECT hash FROM files WHERE kind = 'image' AND hash IS NOT NULL"
                )
            ]
            conn.executemany("DELETE FROM images WHERE hash = ?", [(h,) for h in gone])
        for digest in gone:
            self.images.full_path(digest).unlink(missing_ok=True)
            self.images.thumb_path(digest).unlink(missing_ok=True)
        return len(gone)

    def _all_image_files(self) -> list[Seen]:
        out = []
        for row in self.db.query(
            "SELECT f.id, f.root_id, f.path, f.size, r.path AS root FROM files f"
            " JOIN roots r ON r.id = f.root_id WHERE f.kind = 'image'"
        ):
            if extension(row["path"]) in COVER_EXTENSIONS:
                full_path = str(Path(row["root"]) / row["path"])
                out.append(
                    Seen(
                        row["root_id"],
                        row["path"],
                        full_path,
                        row["size"],
                        0,
                        0,
                        0,
                        row["id"],
                        True,
                    )
                )
        return out


def prestart_pool(workers: int) -> ProcessPoolExecutor | None:
    """Fork ``workers`` tag readers now, while this process has one thread.

    A progress display draws from its own thread, and forking then could copy a held
    lock, so a pool started during the scan comes from a fork server: a fresh
    interpreter importing the package, measured at 0.44 s before the first result against
    14 ms for a fork. The CLI forks its readers before the display starts instead. An
    unused pool costs the two forks. None when forking is not possible or not needed.
    """
    if (
        workers <= 1
        or threading.active_count() != 1
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    pool.submit(int).result()  # with fork, the first task starts every worker at once
    return pool


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork when this process has one thread (cheap, no re-imports); else a fork server.

    With a progress bar drawing from its own thread, forking could copy a held lock,
    so the workers then come from a clean fork server instead.
    """
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["homekeep.music.tags"])
    return ctx


def _process_image(digest: str, root: str, size: int) -> ImageInfo:
    return ImageStore(Path(root)).process(digest, size)


def _warning(ext: str, detected: str | None) -> str | None:
    """Say when a file's content is not the format its extension claims."""
    expected = AUDIO_EXTENSIONS.get(ext)
    if detected is None or expected is None:
        return None
    if expected == "m4a" and detected in ("aac", "alac", "mp4"):
        return None
    if expected == detected:
        return None
    return f"extension .{ext} but the content is {detected}"
