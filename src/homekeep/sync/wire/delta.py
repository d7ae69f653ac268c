"""Chunk list deltas: a changed file's list as runs of its old list plus new entries."""

from __future__ import annotations

from pathlib import Path

from homekeep.core.errors import InvalidInput
from homekeep.sync.wire.chunklist import (
    ENTRY_BYTES,
    SPILL,
    WINDOW,
    ChunkList,
    ChunkListBuilder,
    Chunks,
    decode_chunks,
)


class DeltaTooBig(InvalidInput):
    """A delta that would copy its base too often or add up past its file's size: the
    client is asked for the whole list instead."""


Delta = list[list[int] | str]
DELTA_LITERALS = SPILL  # new entries a delta may carry; past that the list goes whole
DELTA_ITEMS = 1 << 16  # runs and literals in one delta (the server takes up to 1 << 20)
DELTA_REUSE = 4  # a delta may copy up to this many times the old list (plus a window)


def reuse_limit(old_len: int) -> int:
    """Entries a delta may copy from an old list of ``old_len``: a few times the list.

    A delta of a few bytes could otherwise copy a huge list thousands of times over.
    """
    return DELTA_REUSE * old_len + WINDOW


class _Near:
    """Where an entry sits in ``old``, looked up among the entries around a position.

    A short list is indexed whole. A long one (a ListFile) is indexed a few windows at a
    time around where the last match was: an edit moves the match by a few chunks, so
    this finds it, holding three windows instead of the whole list.
    """

    def __init__(self, old: Chunks) -> None:
        self.old = old
        self.size = len(old)
        self.whole = isinstance(old, ChunkList) and self.size <= 3 * WINDOW
        self.lo = self.hi = -1
        self.raw = b""
        self.at: dict[bytes, int] = {}

    def _load(self, pos: int) -> None:
        if (
            self.lo >= 0
            and self.lo <= max(0, pos - WINDOW // 2)
            and (self.hi >= min(self.size, pos + WINDOW))
        ):
            return
        if self.whole:
            lo, hi = 0, self.size
        else:
            lo, hi = max(0, pos - WINDOW), min(self.size, pos + 2 * WINDOW)
        self.raw = self.old.part(lo, hi - lo)
        self.at = {}
        for i in range(len(self.raw) // ENTRY_BYTES):
            self.at.setdefault(self.raw[i * ENTRY_BYTES : (i + 1) * ENTRY_BYTES], lo + i)
        self.lo, self.hi = lo, hi

    def entry(self, i: int) -> bytes:
        if not self.lo <= i < self.hi:
            self._load(i)
        at = (i - self.lo) * ENTRY_BYTES
        return self.raw[at : at + ENTRY_BYTES]

    def find(self, entry: bytes, pos: int) -> int | None:
        self._load(pos)
        return self.at.get(entry)


def make_delta(old: Chunks, new: Chunks, *, literals: int | None = None) -> Delta | None:
    """Describe ``new`` against ``old``: runs ``[start, count]`` of old chunks, and literal
    chunk entries (encoded as by ChunkList.encode) for the rest. An edit in the middle of a big
    file then costs a few entries instead of the whole chunk list.

    Both lists are read in order, a window at a time. With ``literals``, None when the
    delta would carry more new entries than that (the whole list is then cheaper).
    """
    near = _Near(old)
    out: Delta = []
    run_start = run_next = -1
    literal = bytearray()
    carried = copied = 0
    most = reuse_limit(len(old))
    pos = 0  # where in ``old`` the next entry is expected

    def flush_run() -> None:
        nonlocal run_start, copied
        if run_start >= 0:
            out.append([run_start, run_next - run_start])
            copied += run_next - run_start
            run_start = -1

    for part in new.slices():
        for i in range(0, len(part), ENTRY_BYTES):
            entry = part[i : i + ENTRY_BYTES]
            if run_start >= 0 and run_next < near.size and near.entry(run_next) == entry:
                run_next += 1
                pos = run_next
                continue
            flush_run()
            at = near.find(entry, pos)
            if at is not None:
                if literal:
                    out.append(ChunkList(literal).encode())
                    literal = bytearray()
                run_start, run_next = at, at + 1
                pos = run_next
            else:
                literal += entry
                carried += 1
                if literals is not None and carried > literals:
                    return None
            if len(out) > DELTA_ITEMS or copied > most:
                return None  # reordered or repeated content: the whole list is smaller
    flush_run()
    if len(out) > DELTA_ITEMS or copied > most:
        return None
    if literal:
        out.append(ChunkList(literal).encode())
    return out


def apply_delta(
    old: Chunks,
    delta: Delta,
    *,
    max_chunks: int,
    max_size: int | None = None,
    spill_dir: Path | None = None,
) -> Chunks:
    """Rebuild a chunk list from ``old`` and a delta; raise InvalidInput if malformed.

    A long result goes to a temp file in ``spill_dir`` as it is built (a ListFile). It
    may not add up to more than ``max_size`` bytes nor copy more than ``reuse_limit`` of
    ``old``, checked as it grows: a short delta cannot make a huge temp file.
    """
    out = ChunkListBuilder(spill_dir)
    most = reuse_limit(len(old))
    copied = 0
    for item in delta:
        if isinstance(item, str):
            out.extend(decode_chunks(item, max_chunks=max_chunks).raw)
        elif (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            and item[0] >= 0
            and item[1] >= 1
            and item[0] + item[1] <= len(old)
        ):
            copied += item[1]
            if copied > most:
                raise DeltaTooBig("the chunk delta copies the old list too many times over")
            for start in range(item[0], item[0] + item[1], WINDOW):
                if len(out) > max_chunks or (max_size is not None and out.size > max_size):
                    break
                out.extend(old.part(start, min(WINDOW, item[0] + item[1] - start)))
        else:
            raise InvalidInput(f"malformed chunk delta entry {str(item)[:40]}")
        if len(out) > max_chunks:
            raise InvalidInput(f"chunk list has more than {max_chunks} chunks")
        if max_size is not None and out.size > max_size:
            raise DeltaTooBig("the chunk delta adds up to more than the file's size")
    return out.done()
