"""Carry out the receiving half of a two-way plan in the local folder.

A file the server has is built from what the client already holds before anything is
fetched: a local file with the same content is copied (a reflink where the filesystem
has them), and a chunk found in any file of the folder is read locally; only the chunks
missing everywhere are fetched, by byte ranges of the server's file. Every chunk and the
whole file are checked against their BLAKE3 ids before the file is renamed into place,
and whatever the rename or a delete replaces goes to the versions folder first. A local
path that changed since the scan is left alone: the next pass sees the conflict.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from blake3 import blake3

from homekeep.core.errors import Conflict, HomekeepError, InvalidInput, NotFound
from homekeep.sync.client.index import ClientIndex, Remote
from homekeep.sync.client.reconcile import Plan, Side
from homekeep.sync.client.scan import Local
from homekeep.sync.versions import preserve
from homekeep.sync.wire.chunklist import decode_chunks
from homekeep.sync.wire.folder import TMP
from homekeep.sync.wire.protocol import check_path

log = logging.getLogger(__name__)

READ_BYTES = 8 << 20  # file data asked for in one read request
WINDOW = 256  # chunks assembled at a time (8 MiB on average)


class Source(Protocol):
    """Where a file's content comes from: the server (the client's Connection)."""

    def file_chunks(self, path: str) -> dict[str, Any]: ...

    def read(self, path: str, file_hash: str, ranges: list[tuple[int, int]]) -> bytes: ...


@dataclass
class Received:
    """What a receiving pass did."""

    files: int = 0
    bytes_fetched: int = 0
    bytes_reused: int = 0
    deleted: int = 0
    conflicts: int = 0
    skipped: list[str] = field(default_factory=list)  # left for the next pass


class Receiver:
    """Applies pulls, local renames and conflict copies; belongs to the pass's thread."""

    def __init__(self, root: Path, source: Source, index: ClientIndex) -> None:
        self.root = root
        self.source = source
        self.index = index
        self.tmp = root / TMP
        self._chunk_map: dict[str, tuple[str, int, int]] | None = None

    def apply(
        self,
        plan: Plan,
        local: Mapping[str, Local],
        remote: Mapping[str, list[Any]],
    ) -> Received:
        """Make the local folder take every change the plan pulls; ``remote`` rows by path."""
        done = Received()
        self.tmp.mkdir(exist_ok=True)
        self._chunk_map = None
        try:
            for src, dest in plan.rename_local:
                self._move(src, dest, local, done)
            for c in plan.conflicts:
                self._conflict(c.path, c.winner, c.copy, local, remote, done)
            renamed = {dest: src for src, dest in plan.rename_remote}
            pulls = sorted(plan.pull.items(), key=lambda kv: kv[0].count("/"))
            for path, version in pulls:
                if version is None:
                    continue
                if path in renamed:  # the server's edit of the source, under our new name
                    source = renamed[path]
                    self._take(path, remote[source], local, done, fetch_as=source)
                else:
                    self._take(path, remote[path], local, done)
            deletes = [p for p, v in pulls if v is None]
            for path in sorted(deletes, key=lambda p: -p.count("/")):
                if self._unchanged(path, local.get(path)):
                    preserve(self.root, path)
                    if _remove(self.root / path):
                        done.deleted += 1
                    self.index.forget_cache([path])
                else:
                    done.skipped.append(path)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return done

    # -- steps -------------------------------------------------------------------------

    def _move(self, src: str, dest: str, local: Mapping[str, Local], done: Received) -> None:
        """A rename the server made, done here too (this side's edit then goes under dest)."""
        if not self._unchanged(src, local.get(src)) or not self._safe(dest):
            done.skipped.append(src)
            return
        preserve(self.root, dest)
        (self.root / src).replace(self.root / dest)

    def _conflict(
        self,
        path: str,
        winner: Side,
        copy: str | None,
        local: Mapping[str, Local],
        remote: Mapping[str, list[Any]],
        done: Received,
    ) -> None:
        done.conflicts += 1
        row = remote.get(path)
        if winner is Side.LOCAL:
            if copy is not None and row is not None:
                self._take(copy, row, {}, done, fetch_as=path)
            return
        if not self._unchanged(path, local.get(path)) or row is None:
            done.skipped.append(path)
            return
        if copy is not None and self._safe(copy):
            (self.root / path).replace(self.root / copy)  # ours, renamed: sent as a new file
        else:
            preserve(self.root, path)
            _remove(self.root / path)
        self._take(path, row, {}, done)

    def _take(
        self,
        path: str,
        row: list[Any],
        local: Mapping[str, Local],
        done: Received,
        *,
        fetch_as: str | None = None,
    ) -> None:
        """Make ``path`` the server's version ``row`` (of ``fetch_as``, when it differs)."""
        if not self._safe(path) or not self._unchanged(path, local.get(path)):
            done.skipped.append(path)
            return
        _, kind, size, mtime_ns, mode, file_hash, target = row
        full = self.root / path
        if kind == "dir":
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISDIR(full.lstat().st_mode):
                    preserve(self.root, path)
                    full.unlink()
            full.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                full.chmod(mode & 0o7777)
            return
        full.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{done.files}-{os.getpid()}"
        if kind == "link":
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(str(target))
            os.utime(tmp, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        else:
            try:
                chunks = self._build(fetch_as or path, str(file_hash), int(size), tmp, done)
            except (_Changed, NotFound, Conflict):
                tmp.unlink(missing_ok=True)
                done.skipped.append(path)  # changed on the server meanwhile: the next pass
                return
            tmp.chmod(mode & 0o7777)
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        if not self._unchanged(path, local.get(path)):  # edited while we fetched
            tmp.unlink(missing_ok=True)
            done.skipped.append(path)
            return
        preserve(self.root, path)
        with contextlib.suppress(IsADirectoryError):
            tmp.replace(full)
            if kind == "file":
                st = full.lstat()
                self.index.remember(
                    path, st.st_size, st.st_mtime_ns, st.st_ino, str(file_hash), chunks
                )
            done.files += 1
            return
        shutil.rmtree(full)  # a folder where the file goes: kept in versions above
        tmp.replace(full)
        done.files += 1

    def _build(self, path: str, file_hash: str, size: int, tmp: Path, done: Received) -> Any:
        """Write the server's ``path`` (content ``file_hash``) to ``tmp``; returns its chunks."""
        same = self._local_with(file_hash)
        if same is not None:
            shutil.copyfile(self.root / same, tmp)  # in the kernel (copy_file_range, sendfile)
            known = self.index.previous(same)
            if known is not None and _hash_of(tmp) == file_hash:
                done.bytes_reused += size
                return known[1]
        answer = self.source.file_chunks(path)
        if answer.get("hash") != file_hash or answer.get("size") != size:
            raise _Changed(path)
        chunks = decode_chunks(str(answer["chunks"]), max_chunks=size // 1024 + 2)
        whole = blake3()
        with open(tmp, "wb") as out:  # noqa: PTH123
            for window in _windows(list(chunks.offsets()), WINDOW):
                data = self._window(path, file_hash, window, done)
                for piece in data:
                    whole.update(piece)
                    out.write(piece)
        if whole.hexdigest() != file_hash:
            raise InvalidInput(f"{path!r} arrived with other content than the server announced")
        return chunks

    def _window(
        self, path: str, file_hash: str, window: list[tuple[str, int, int]], done: Received
    ) -> list[bytes]:
        """The chunks of one window, from local files where found, else from the server."""
        pieces: list[bytes | None] = []
        missing: list[int] = []
        for i, (chunk, _offset, length) in enumerate(window):
            data = self._local_chunk(chunk, length)
            pieces.append(data)
            if data is None:
                missing.append(i)
            else:
                done.bytes_reused += length
        start = 0
        while start < len(missing):
            group: list[int] = []
            total = 0
            while start < len(missing) and (not group or total < READ_BYTES):
                i = missing[start]
                group.append(i)
                total += window[i][2]
                start += 1
            ranges = [(window[i][1], window[i][2]) for i in group]
            data = self.source.read(path, file_hash, ranges)
            pos = 0
            for i in group:
                chunk, _offset, length = window[i]
                piece = data[pos : pos + length]
                pos += length
                if blake3(piece).hexdigest() != chunk:
                    raise InvalidInput(f"a chunk of {path!r} arrived damaged; try again")
                pieces[i] = piece
                done.bytes_fetched += length
        return [p for p in pieces if p is not None]

    # -- local content -----------------------------------------------------------------

    def _local_with(self, file_hash: str) -> str | None:
        """A local file that still has this content, by the hash cache."""
        for rel, size, mtime_ns in self.index.paths_with(file_hash):
            with contextlib.suppress(OSError):
                st = (self.root / rel).lstat()
                if stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
                    return rel
        return None

    def _local_chunk(self, chunk: str, length: int) -> bytes | None:
        if self._chunk_map is None:
            self._chunk_map = self.index.chunk_map()
        found = self._chunk_map.get(chunk)
        if found is None:
            return None
        rel, offset, _ = found
        try:
            with open(self.root / rel, "rb") as fh:  # noqa: PTH123
                fh.seek(offset)
                data = fh.read(length)
        except OSError:
            return None
        return data if blake3(data).hexdigest() == chunk else None

    # -- checks ------------------------------------------------------------------------

    def _safe(self, path: str) -> bool:
        """A path from the server that stays in the folder: no folder above it is a link."""
        try:
            check_path(path)
        except HomekeepError:
            log.warning("ignoring %r from the server: not a valid path", path)
            return False
        current = self.root
        for part in path.split("/")[:-1]:
            current = current / part
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISDIR(current.lstat().st_mode):
                    return False
        return True

    def _unchanged(self, path: str, seen: Local | None) -> bool:
        """The local path is as the scan saw it (or still absent)."""
        try:
            st = (self.root / path).lstat()
        except FileNotFoundError:
            return seen is None
        if seen is None:
            return False
        if stat.S_ISDIR(st.st_mode):
            return seen.kind == "dir"
        return (st.st_size, st.st_mtime_ns, st.st_ino) == (seen.size, seen.mtime_ns, seen.inode)


class _Changed(HomekeepError):
    """The server's file changed between the manifest and the fetch."""


def remote_of(row: list[Any]) -> Remote:
    """A manifest row as the index's Remote."""
    _, kind, size, mtime_ns, mode, file_hash, target = row
    return Remote(kind, size, mtime_ns, mode, file_hash, target)


def _windows(items: list[tuple[str, int, int]], size: int) -> Iterator[list[tuple[str, int, int]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _hash_of(path: Path) -> str:
    h = blake3()
    with open(path, "rb") as fh:  # noqa: PTH123
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _remove(full: Path) -> bool:
    try:
        st = full.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(full)
    else:
        full.unlink()
    return True
