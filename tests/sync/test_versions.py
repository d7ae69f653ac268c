"""The versions folder: kept on delete and overwrite, listed, restored, pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from homekeep.core.errors import NotFound
from homekeep.sync.versions import listing, preserve, prune, restore, version_name
from homekeep.sync.wire.folder import VERSIONS

WHEN = datetime(2026, 12, 3, 17, 0, 5, tzinfo=UTC)


def test_names_follow_syncthing(tmp_path: Path) -> None:
    assert version_name("a/b/report.txt", WHEN) == f"{VERSIONS}/a/b/report~20261203-170005.txt"
    assert version_name("Makefile", WHEN) == f"{VERSIONS}/Makefile~20261203-170005"
    assert version_name(".bashrc", WHEN, 2) == f"{VERSIONS}/.bashrc~20261203-170005-2"


def test_a_file_is_kept_as_a_link_that_survives_its_overwrite(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "a.txt"
    f.write_text("first")
    (kept,) = preserve(tmp_path, "d/a.txt", when=WHEN)
    tmp = tmp_path / "new"
    tmp.write_text("second")
    tmp.replace(f)  # what an atomic overwrite does
    assert (tmp_path / kept).read_text() == "first"
    assert f.read_text() == "second"
    (again,) = preserve(tmp_path, "d/a.txt", when=WHEN)  # the same second: a second name
    assert again != kept
    assert (tmp_path / again).read_text() == "second"
    assert [k.path for k in listing(tmp_path)] == ["d/a.txt", "d/a.txt"]


def test_a_folder_keeps_every_file_and_link_under_it(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "x").write_text("x")
    (tmp_path / "d" / "e" / "y").write_text("y")
    (tmp_path / "d" / "ln").symlink_to("x")
    kept = preserve(tmp_path, "d", when=WHEN)
    assert len(kept) == 3
    assert sorted(k.path for k in listing(tmp_path)) == ["d/e/y", "d/ln", "d/x"]
    assert (tmp_path / version_name("d/ln", WHEN)).readlink() == Path("x")


def test_nothing_outside_the_folder_is_kept_through_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    root = tmp_path / "root"
    root.mkdir()
    (root / "d").symlink_to(outside)
    assert preserve(root, "d/secret", when=WHEN) == []
    assert preserve(root, "missing", when=WHEN) == []


def test_restore_puts_it_back_and_keeps_what_it_replaces(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("old")
    (kept,) = preserve(tmp_path, "a.txt", when=WHEN)
    f.unlink()  # the kept name shares the inode: callers replace or unlink right after
    f.write_text("new")
    assert restore(tmp_path, kept) == "a.txt"
    assert f.read_text() == "old"
    contents = sorted((tmp_path / k.version).read_text() for k in listing(tmp_path))
    assert contents == ["new", "old"]
    with pytest.raises(NotFound):
        restore(tmp_path, f"{VERSIONS}/../../etc/passwd")


def test_prune_drops_only_old_versions(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("a")
    preserve(tmp_path, "d/a", when=WHEN - timedelta(days=40))
    preserve(tmp_path, "d/a", when=WHEN - timedelta(days=1))
    assert prune(tmp_path, 30, now=WHEN) == 1
    assert [k.replaced_at for k in listing(tmp_path)] == [WHEN - timedelta(days=1)]
    assert prune(tmp_path, 0, now=WHEN) == 1
    assert not (tmp_path / VERSIONS / "d").exists()
