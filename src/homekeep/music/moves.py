"""Moved files: a new path holding a deleted file's content keeps its id and its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homekeep.music.artwork import ArtworkStore
from homekeep.music.disk import Seen
from homekeep.music.kinds import kind_of
from homekeep.music.store import MusicStore
from homekeep.music.tagmap import TRACK_COLUMNS
from homekeep.music.tags import SAMPLE_BYTES, fingerprint, read_file


def find_moves(
    new: list[Seen],
    deleted: dict[tuple[int, str], tuple[Any, ...]],
    store: MusicStore,
    artwork: ArtworkStore,
) -> list[Seen]:
    """Recognise new paths that are deleted files moved, so they keep their id and data.

    A move needs the same size and the same content hash. Files over 2 MiB are hashed
    by sample (size, first and last MiB), so for them the new file's tags and stream
    facts are read too and must equal the stored ones: a look-alike that differs only
    in the middle (tags behind a big picture block) is a new file, never a move that
    would keep the deleted file's tags. Moved files leave ``deleted`` and take its ids.
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
                    row = _read_row(item, artwork)
                if row != store.track_row(deleted[key][0]):
                    continue
            item.id, item.known = deleted.pop(key)[0], True
            del candidates[n]
            moved.append(item)
            break
    return moved


def _read_row(item: Seen, artwork: ArtworkStore) -> tuple[Any, ...]:
    result = read_file(0, item.path, item.size, artwork)
    if result.error or result.vanished:
        return ("unreadable",)
    return tuple(result.row[: len(TRACK_COLUMNS)])
