"""Real source trees nobody here made, pushed through a real server and compared byte for byte.

The machine's own Python standard library always runs; a release upgrade of a package
fetched by pip at test time is skipped (with the reason) where the fetch is impossible.
A 20-run loop of the standard library push is marked ``slow``: `pytest -m slow`.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.sync.helpers import push, snapshot, sync_server

# left out: compiled caches, installed packages and the test suite (123 MiB)
SKIP = shutil.ignore_patterns("__pycache__", "site-packages", "dist-packages", "test")


@pytest.fixture(scope="module")
def stdlib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the running Python's standard library (links kept as links)."""
    dest = tmp_path_factory.mktemp("real") / "stdlib"
    shutil.copytree(sysconfig.get_path("stdlib"), dest, symlinks=True, ignore=SKIP)
    return dest


def assert_same_bytes(src: Path, dst: Path) -> None:
    """Every file of ``src`` is in ``dst`` with the same bytes, and nothing else is there;
    kinds, link targets, modes and mtimes (folders too) are the same."""
    names = {p.relative_to(src) for p in src.rglob("*")}
    assert {p.relative_to(dst) for p in dst.rglob("*")} == names
    for rel in names:
        if (src / rel).is_file() and not (src / rel).is_symlink():
            assert filecmp.cmp(src / rel, dst / rel, shallow=False), f"{rel} differs"
    assert snapshot(dst) == snapshot(src)


def test_stdlib_push_arrives_byte_for_byte(tmp_path: Path, stdlib: Path) -> None:
    """Issue 11: a push of a real tree failed with 'chunk ... is not valid zstd' in most runs."""
    files = sum(1 for p in stdlib.rglob("*") if p.is_file() and not p.is_symlink())
    assert files > 500, "the standard library copy is too small to be the real one"
    with sync_server(tmp_path) as srv:
        summary = push(stdlib, srv)
        assert summary["errors"] == []
        assert summary["created"] == files
        assert_same_bytes(stdlib, srv.root / "laptop")


@pytest.mark.slow
@pytest.mark.parametrize("run", range(20))
def test_stdlib_push_twenty_fresh_servers(tmp_path: Path, stdlib: Path, run: int) -> None:
    """The same push 20 times, a fresh server each time: a race shows up in one of them."""
    with sync_server(tmp_path) as srv:
        assert push(stdlib, srv)["errors"] == []
        assert_same_bytes(stdlib, srv.root / "laptop")


UPGRADE = ("requests", "2.31.0", "2.32.3")  # a real release upgrade: dozens of files change


def _release(name: str, version: str, cache: Path) -> Path:
    """The source tree of a release, fetched as an sdist by pip (skip when it cannot be)."""
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps"),
                *("--no-binary", ":all:", "--disable-pip-version-check", "-d", str(cache)),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip download {name}=={version} took over 180 s (no network?)")
    archives = sorted(cache.glob(f"{name}-{version}.tar.gz"))
    if done.returncode != 0 or not archives:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"pip could not fetch the sdist of {name}=={version}: {reason}")
    out = cache / f"{name}-{version}-tree"
    with tarfile.open(archives[0]) as tar:
        tar.extractall(out, filter="data")
    return out / f"{name}-{version}"


def test_release_upgrade_arrives_byte_for_byte(tmp_path: Path) -> None:
    """An old release pushed, the new one copied over it (deleting what it dropped), pushed
    again: the server's copy is the new release, byte for byte."""
    name, old, new = UPGRADE
    old_tree = _release(name, old, tmp_path / "sdists")
    new_tree = _release(name, new, tmp_path / "sdists")
    work = tmp_path / "project"
    shutil.copytree(old_tree, work, symlinks=True)
    with sync_server(tmp_path) as srv:
        assert push(work, srv)["errors"] == []
        assert_same_bytes(work, srv.root / "laptop")
        subprocess.run(["rsync", "-a", "--delete", f"{new_tree}{os.sep}", str(work)], check=True)
        summary = push(work, srv)
        assert summary["errors"] == []
        assert summary["modified"] > 10
        assert_same_bytes(work, srv.root / "laptop")


def test_two_clients_push_stdlib_at_once(tmp_path: Path, stdlib: Path) -> None:
    """Two machines pushing the same real tree at the same moment: the server verifies and
    places both at once on its threads, and each copy arrives whole."""
    with sync_server(tmp_path) as srv, ThreadPoolExecutor(2) as pool:
        both = [pool.submit(push, stdlib, srv, name) for name in ("laptop", "desktop")]
        for pushed in both:
            assert pushed.result()["errors"] == []
        for name in ("laptop", "desktop"):
            assert_same_bytes(stdlib, srv.root / name)
