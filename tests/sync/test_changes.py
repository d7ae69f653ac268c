"""Every kind of change, pushed by the real client to a real server, ends in identical trees."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sync.helpers import SyncServer, push, snapshot


def _base(root: Path) -> None:
    (root / "docs/deep/er").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "docs/a.txt").write_text("alpha\n")
    (root / "docs/deep/b.bin").write_bytes(os.urandom(300_000))
    (root / "docs/deep/er/c.txt").write_text("gamma" * 1000)
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "script.sh").chmod(0o755)
    os.utime(root / "docs/a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    (root / "link").symlink_to("docs/a.txt")
    (root / "dangling").symlink_to("../nowhere")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _swap_folder_for_file(r: Path) -> None:
    shutil.rmtree(r / "docs/deep")
    _write(r / "docs/deep", b"f")


def _swap_file_for_folder(r: Path) -> None:
    (r / "script.sh").unlink()
    _write(r / "script.sh/in", b"i")


def _retarget_link(r: Path) -> None:
    (r / "link").unlink()
    (r / "link").symlink_to("script.sh")


def _link_to_file(r: Path) -> None:
    (r / "link").unlink()
    _write(r / "link", b"now a file")


def _add_to_old_folder(r: Path) -> None:
    # a folder with an old mtime gets a new child: the server's folder must end with the
    # folder's new local mtime, not the moment the server wrote the child
    os.utime(r / "empty", ns=(10**18, 10**18))
    _write(r / "empty/now", b"x")
    _write(r / "docs/deep/er/new.txt", b"y")


def _odd_names(r: Path) -> None:
    for rel in ("ünï cødé/日本語 ✓.txt", "-dash", "sp ace s/  lead", 'quote\'s "q"', "new\nline"):
        _write(r / rel, rel.encode())


CHANGES: dict[str, Callable[[Path], object]] = {
    "create file": lambda r: _write(r / "new.txt", b"new"),
    "create nested": lambda r: _write(r / "x/y/z/new.bin", os.urandom(70_000)),
    "create empty folder": lambda r: (r / "docs/deep/empty2").mkdir(),
    "create empty file": lambda r: _write(r / "zero", b""),
    "modify": lambda r: (r / "docs/a.txt").write_text("changed\n"),
    "modify same size": lambda r: (r / "docs/a.txt").write_text("ALPHA\n"),
    "touch": lambda r: os.utime(r / "docs/a.txt", ns=(5_000_000_000, 5_000_000_000)),
    "chmod file": lambda r: (r / "script.sh").chmod(0o700),
    "chmod folder": lambda r: (r / "docs/deep").chmod(0o750),
    "delete file": lambda r: (r / "docs/deep/b.bin").unlink(),
    "delete folder": lambda r: shutil.rmtree(r / "docs/deep"),
    "delete empty folder": lambda r: (r / "empty").rmdir(),
    "rename file": lambda r: (r / "docs/a.txt").rename(r / "docs/renamed.txt"),
    "move file": lambda r: (r / "docs/deep/b.bin").rename(r / "empty/b.bin"),
    "rename folder": lambda r: (r / "docs").rename(r / "papers"),
    "move nested folder": lambda r: (r / "docs/deep/er").rename(r / "empty/er"),
    "swap folder for file": _swap_folder_for_file,
    "swap file for folder": _swap_file_for_folder,
    "retarget link": _retarget_link,
    "link to file": _link_to_file,
    "unicode and odd names": _odd_names,
    "set a folder's mtime": lambda r: os.utime(r / "docs/deep", ns=(10**18, 10**18)),
    "file added to an old folder": _add_to_old_folder,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_change_ends_with_identical_trees(server: SyncServer, tmp_path: Path, change: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _base(src)
    name = f"c{abs(hash(change)) % 10**8}"
    push(src, server, name)
    assert snapshot(server.root / name) == snapshot(src)
    CHANGES[change](src)
    summary = push(src, server, name)
    assert snapshot(server.root / name) == snapshot(src)
    assert summary["errors"] == []


@pytest.mark.parametrize("change", ["rename file", "move file", "rename folder"])
def test_renames_are_renames_and_send_no_data(
    server: SyncServer, tmp_path: Path, change: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _base(src)
    name = f"r{abs(hash(change)) % 10**8}"
    push(src, server, name)
    inode_before = {
        p: (server.root / name / p).lstat().st_ino for p in ("docs/a.txt", "docs/deep/b.bin")
    }
    CHANGES[change](src)
    summary = push(src, server, name)
    assert summary["renamed"] == 1
    assert summary["data_bytes_sent"] == 0
    assert summary["files_sent"] == 0
    moved = {
        "rename file": ("docs/a.txt", "docs/renamed.txt"),
        "move file": ("docs/deep/b.bin", "empty/b.bin"),
        "rename folder": ("docs/a.txt", "papers/a.txt"),
    }[change]
    assert (server.root / name / moved[1]).lstat().st_ino == inode_before[moved[0]]
    assert snapshot(server.root / name) == snapshot(src)


def test_excludes_skip_temp_files_and_patterns(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "keep.txt", b"k")
    _write(src / ".notes.txt.swp", b"vim")
    _write(src / "draft.txt~", b"backup")
    _write(src / "build/out.o", b"obj")
    _write(src / "logs/today.log", b"log")
    _write(src / ".homekeepignore", b"build/\n")
    push(src, server, "excl", "--exclude", "*.log")
    got = sorted(snapshot(server.root / "excl"))
    assert got == [".", ".homekeepignore", "keep.txt", "logs"]


def test_the_top_folder_keeps_its_mode_and_mtime(server: SyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src / "a.txt", b"a")
    _write(src / "deep/b.txt", b"b")
    os.utime(src, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    src.chmod(0o750)
    push(src, server, "top")
    top = (server.root / "top").stat()
    assert (top.st_mtime_ns, stat.S_IMODE(top.st_mode)) == (1_600_000_000_000_000_000, 0o750)
    # a new entry right in the folder moves its mtime on both sides; the server takes ours
    _write(src / "c.txt", b"c")
    os.utime(src, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    summary = push(src, server, "top")
    assert summary["created"] == 1
    assert snapshot(server.root / "top") == snapshot(src)
    # a change deeper down leaves it alone; the server gives it back after its own changes
    _write(src / "deep/b.txt", b"bb")
    push(src, server, "top")
    assert snapshot(server.root / "top") == snapshot(src)
    assert (server.root / "top").stat().st_mtime_ns == 1_700_000_000_000_000_000
