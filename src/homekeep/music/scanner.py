"""The library scan: walk, stat and diff, read tags, store artwork, write the database.

An unchanged library costs one ``stat`` per file: the known files of a root are loaded
in one query and compared by size and mtime_ns in memory. Tags are read only for new
and changed files (all files with ``full``), in a process pool fed chunk by chunk while
the parent writes finished chunks to the database in batched transactions. This module
holds the steps in their order; each step's work is in its own module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homekeep.core.db import utcnow
from homekeep.core.progress import Display, Task, progress
from homekeep.music.artwork import (
    MAX_IMAGE_BYTES,
    ArtworkStore,
    ImageInfo,
    folder_covers,
    process_image,
)
from homekeep.music.config import MusicConfig
from homekeep.music.disk import Seen, compare, walk
from homekeep.music.kinds import kind_of
from homekeep.music.moves import find_moves
from homekeep.music.pool import Workers, as_finished
from homekeep.music.roots import check_overlap
from homekeep.music.store import MusicStore
from homekeep.music.tags import ReadResult, read_batch

STEPS = ("walk", "stat_diff", "tag_read", "artwork", "database")
CHUNK = 64
IN_FLIGHT = 16  # chunks queued per worker, so they never wait while the parent writes
_MIN_POOL_FILES = 2 * CHUNK  # fewer files than this: a pool costs more than it saves


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


class Scanner:
    """Scans roots into one music library: its store and its artwork."""

    def __init__(self, store: MusicStore, artwork: ArtworkStore, config: MusicConfig) -> None:
        self.store = store
        self.artwork = artwork
        self.config = config
        self.workers = config.workers or os.cpu_count() or 1

    def scan(
        self,
        roots: list[Path],
        *,
        full: bool = False,
        display: Display | None = None,
        pool: ProcessPoolExecutor | None = None,
    ) -> ScanResult:
        """Scan the roots (absolute folders) and return what changed and how long it took.

        ``pool``: worker processes started beforehand (see ``pool.prestart_pool``), used
        for reading tags and decoding images instead of starting new ones.
        """
        workers = Workers(self.workers, pool)
        with self.store.lock():
            if display is None:
                with progress(enabled=False) as silent:
                    return self._scan(roots, full, silent, workers)
            return self._scan(roots, full, display, workers)

    def _scan(
        self, roots: list[Path], full: bool, display: Display, workers: Workers
    ) -> ScanResult:
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
        root_ids = []
        for root in roots:
            check_overlap(root, self.store.root_paths())
            root_ids.append(self.store.add_root(root))
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
            known = self.store.known_files(root_ids)
            diff = compare(entries, known, full, stat_bar)
            deleted = known  # what is left was not found on disk...
            for root_id, prefix in unreadable:  # ...or sits in a folder we could not list
                for key in [k for k in deleted if k[0] == root_id and k[1].startswith(prefix)]:
                    del deleted[key]
            new, changed = diff.new, diff.changed
            moved = find_moves(new, deleted, self.store, self.artwork)
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
        next_id = self.store.next_file_id()
        for item in fresh:
            item.id, next_id = next_id, next_id + 1
        to_read = [s for s in (*fresh, *changed, *diff.reread) if kind_of(s.ext) == "audio"]
        dirty = bool(fresh or changed or moved or deleted or full)
        with clock.step("database"):
            # audio files get their row with their tags, in one write, after reading
            self.store.write_files(
                [s for s in fresh if kind_of(s.ext) != "audio"],
                [s for s in changed if kind_of(s.ext) != "audio"],
                moved,
                deleted,
                self.config.batch_size,
            )
        read_bar = display.task("reading tags", total=len(to_read))
        errors, readers = self._read_tags(to_read, clock, read_bar, workers)
        counts["tags_read"] = len(to_read)
        with clock.step("artwork"):
            art_bar = display.task("artwork")
            touched = [*fresh, *changed, *moved]
            counts["images_new"] = self._artwork(touched, full, art_bar, workers)
            counts["images_removed"] = self._prune_images() if dirty else 0
        with clock.step("database"):
            if dirty or counts["images_new"]:
                self.store.rebuild_catalog(self.config.cover_priority)
            counts.update(self.store.totals(), failed_reads=errors)
            timings = {k: round(v, 4) for k, v in clock.times.items()}
            names = [str(r) for r in roots]
            scan_id = self.store.record_scan(
                root_ids, started, names, full, readers, counts, timings
            )
        return ScanResult(scan_id, names, full, readers, counts, timings)

    def _read_tags(
        self, items: list[Seen], clock: _Clock, bar: Task, workers: Workers
    ) -> tuple[int, int]:
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
                    self.store.write_reads(pending, by_id)
                pending.clear()

        read_start = time.perf_counter()
        db_before = clock.times["database"]
        images_root = str(self.artwork.root)
        readers = 1 if workers.count <= 1 or len(jobs) < _MIN_POOL_FILES else workers.count
        if readers == 1:
            for chunk in chunks:
                take(read_batch(chunk, images_root))
        else:
            with workers.pool() as pool:
                in_flight = workers.count * IN_FLIGHT
                for done in as_finished(pool, read_batch, chunks, images_root, in_flight=in_flight):
                    take(done)
        with clock.step("database"):
            self.store.write_reads(pending, by_id)
        elapsed = time.perf_counter() - read_start
        clock.times["tag_read"] += elapsed - (clock.times["database"] - db_before)
        return errors, readers

    def _artwork(self, touched: list[Seen], full: bool, bar: Task, workers: Workers) -> int:
        """Store new folder covers, then decode and thumbnail every image not done yet."""
        priority = self.config.cover_priority
        covers = folder_covers(self.store.image_files() if full else touched, priority)
        updates = []
        for s in covers:
            try:
                if s.size > MAX_IMAGE_BYTES:
                    continue
                updates.append((self.artwork.save(Path(s.path).read_bytes()), s.id))
            except OSError:
                continue
        self.store.set_file_hashes(updates)
        size = self.config.thumbnail_size
        todo = self.store.images_to_decode(size)
        bar.update(total=len(todo))
        infos: list[ImageInfo] = []
        if len(todo) > 8 and workers.count > 1:
            with workers.pool() as pool:
                root = str(self.artwork.root)
                for info in pool.map(
                    process_image, todo, [root] * len(todo), [size] * len(todo), chunksize=8
                ):
                    infos.append(info)
                    bar.advance()
        else:
            for digest in todo:
                infos.append(self.artwork.process(digest, size))
                bar.advance()
        self.store.save_images(infos)
        return len(infos)

    def _prune_images(self) -> int:
        """Drop images no track and no folder file refers to any more, rows and files."""
        gone = self.store.prune_images()
        for digest in gone:
            self.artwork.remove(digest)
        return len(gone)
