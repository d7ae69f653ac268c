"""Snapshot jobs: hard links for unchanged files, .partial naming, retention, restore."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from homekeep.backup.config import JobSpec
from homekeep.backup.retention import STAMP_FORMAT, new_stamp, snapshots, to_keep
from tests.backup.conftest import Home


def snapshot_dirs(root: Path) -> list[Path]:
    return [root / name for name in snapshots(root)]


def test_snapshots_hard_link_unchanged_files(home: Home, source: Path) -> None:
    home.write([{"name": "snap", "source": str(source), "method": "snapshot"}])
    assert home.cli("backup", "run", "snap").returncode == 0
    (source / "a.txt").write_text("alpha changed\n")
    second = home.cli("backup", "run", "snap")
    assert second.returncode == 0, second.stderr
    first_dir, second_dir = snapshot_dirs(home.root / "snap")
    assert not any(p.name.endswith(".partial") for p in (home.root / "snap").iterdir())
    same = (first_dir / "b.jpg").stat(), (second_dir / "b.jpg").stat()
    assert same[0].st_ino == same[1].st_ino
    assert same[1].st_nlink == 2
    assert (first_dir / "a.txt").stat().st_ino != (second_dir / "a.txt").stat().st_ino
    assert (first_dir / "a.txt").read_text() == "alpha\n"
    assert (home.root / "snap" / "latest").resolve() == second_dir
    runs = home.history("snap")
    assert runs[1]["snapshot"] == second_dir.name
    assert runs[1]["files_transferred"] == 1
    assert runs[1]["bytes_added"] == len("alpha changed\n")
    # Hard links count once: the total grows by the changed file only.
    assert runs[1]["total_size"] == runs[0]["total_size"] + len("alpha changed\n")


def test_interrupted_snapshot_stays_partial_and_is_resumed(home: Home, source: Path) -> None:
    root = home.root / "snap"
    leftover = root / "2020-01-01T000000Z.partial"
    leftover.mkdir(parents=True)
    (leftover / "a.txt").write_text("alpha\n")
    (leftover / "deleted-since.txt").write_text("old")
    home.write([{"name": "snap", "source": str(source), "method": "snapshot"}])
    result = home.cli("backup", "run", "snap")
    assert result.returncode == 0, result.stderr
    [done] = snapshot_dirs(root)
    assert not done.name.endswith(".partial")
    assert not (done / "deleted-since.txt").exists()
    assert (done / "photos" / "2024" / "d.jpg").exists()


def test_retention_keeps_the_newest(home: Home, source: Path) -> None:
    home.write([{"name": "snap", "source": str(source), "method": "snapshot", "keep_last": 2}])
    for i in range(4):
        (source / f"n{i}.txt").write_text(str(i) * 100)
        assert home.cli("backup", "run", "snap").returncode == 0
    dirs = snapshot_dirs(home.root / "snap")
    assert len(dirs) == 2
    assert (dirs[-1] / "n3.txt").exists()
    assert not (dirs[0] / "n3.txt").exists()
    runs = home.history("snap")
    assert [r["snapshot"] for r in runs[-2:]] == [d.name for d in dirs]
    # The unique bytes of the pruned snapshots left the total.
    assert runs[-1]["total_size"] == sum(
        p.stat().st_size
        for d in dirs
        for p in d.rglob("*")
        if p.is_file() and p.stat().st_nlink == 1
    ) + sum(p.stat().st_size for p in dirs[-1].rglob("*") if p.is_file() and p.stat().st_nlink == 2)


def _stamps(times: list[datetime]) -> list[str]:
    return [t.strftime(STAMP_FORMAT) for t in times]


@pytest.mark.parametrize(
    ("rules", "kept_days_ago"),
    [
        ({"keep_last": 1}, [0]),
        ({"keep_daily": 3}, [0, 1, 2]),
        ({"keep_weekly": 2}, [0, 3]),  # Sunday the 14th ends the week before
        ({"keep_monthly": 2}, [0, 40]),
        ({}, [0, 1, 2, 3, 7, 40, 80]),
    ],
)
def test_retention_rules(rules: dict[str, int], kept_days_ago: list[int]) -> None:
    now = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)  # a Wednesday
    ages = [0, 1, 2, 3, 7, 40, 80]
    names = _stamps([now - timedelta(days=d) for d in ages])
    job = JobSpec.model_validate({"name": "x", "source": "/x", "method": "snapshot", **rules})
    kept = to_keep(names, job)
    assert kept == set(_stamps([now - timedelta(days=d) for d in kept_days_ago]))


def test_restore_a_snapshot_and_refuse_non_empty(home: Home, source: Path) -> None:
    home.write([{"name": "snap", "source": str(source), "method": "snapshot"}])
    assert home.cli("backup", "run", "snap").returncode == 0
    (source / "a.txt").write_text("second version\n")
    assert home.cli("backup", "run", "snap").returncode == 0
    first = home.history("snap")[0]["snapshot"]
    dest = home.tmp / "restored"
    result = home.cli("backup", "restore", "snap", dest, "--snapshot", first)
    assert result.returncode == 0, result.stderr
    assert (dest / "a.txt").read_text() == "alpha\n"
    again = home.cli("backup", "restore", "snap", dest)
    assert again.returncode == 2
    assert "not empty" in again.stderr
    bogus = home.cli("backup", "restore", "snap", home.tmp / "x", "--snapshot", "../../etc")
    assert bogus.returncode == 3
    assert "no snapshot" in bogus.stderr
    latest = home.cli("backup", "restore", "snap", home.tmp / "latest")
    assert latest.returncode == 0
    assert (home.tmp / "latest" / "a.txt").read_text() == "second version\n"


def test_verify_finds_a_changed_file(home: Home, source: Path) -> None:
    home.write([{"name": "snap", "source": str(source), "method": "snapshot"}])
    assert home.cli("backup", "run", "snap").returncode == 0
    ok = home.cli("backup", "verify", "snap")
    assert ok.returncode == 0, ok.stderr
    # Same size and time, different content: only a checksum notices.
    latest = home.root / "snap" / "latest" / "a.txt"
    st = latest.stat()
    latest.write_text("ALPHA\n")
    import os

    os.utime(latest, ns=(st.st_atime_ns, st.st_mtime_ns))
    bad = home.cli("backup", "verify", "snap")
    assert bad.returncode == 1
    assert "a.txt" in bad.stdout
    assert "1 differences" in bad.stderr


@pytest.mark.parametrize("target", ["nas.lan:/backups/snap", "rsync://nas.lan/backups/snap"])
def test_snapshot_to_remote_target_is_refused(home: Home, source: Path, target: str) -> None:
    # Why: docs/backup.md, "Targets" (no rename on a daemon, no retention remotely).
    home.write([{"name": "snap", "source": str(source), "method": "snapshot", "target": target}])
    result = home.cli("backup", "run", "snap")
    assert result.returncode == 2
    assert "snapshots need a local or mounted target" in result.stderr
    listing = json.loads(home.cli("backup", "list", "--json").stdout)
    assert listing[0]["name"] == "snap"


@pytest.mark.parametrize(
    ("rules", "kept_old"),
    [
        ({"keep_monthly": 3}, ["2020-03-15T020000Z", "2020-02-10T020000Z"]),
        ({"keep_weekly": 3}, ["2020-03-15T020000Z", "2020-03-01T020000Z"]),
        ({"keep_daily": 2, "keep_last": 3}, ["2020-03-15T020000Z", "2020-03-14T020000Z"]),
    ],
)
def test_retention_prunes_real_snapshot_dirs(
    home: Home, source: Path, rules: dict[str, int], kept_old: list[str]
) -> None:
    # Old snapshots on disk (dated long ago, so today's date cannot change the answer).
    root = home.root / "snap"
    old = ["2020-01-05T020000Z", "2020-01-20T020000Z", "2020-02-10T020000Z"]
    old += ["2020-03-01T020000Z", "2020-03-14T020000Z", "2020-03-15T020000Z"]
    for name in old:
        (root / name).mkdir(parents=True)
        (root / name / "old.txt").write_text(name * 100)
    (root / "2020-03-16T020000Z.partial").mkdir()  # an interrupted run: resumed, not kept
    home.write([{"name": "snap", "source": str(source), "method": "snapshot", **rules}])
    result = home.cli("backup", "run", "snap")
    assert result.returncode == 0, result.stderr
    new = home.history("snap")[-1]["snapshot"]
    assert sorted(p.name for p in root.iterdir()) == sorted([*kept_old, new, "latest"])
    assert (root / "latest").resolve() == (root / new).resolve()
    log = Path(home.history("snap")[-1]["log_file"]).read_text()
    assert log.count("retention: removed snapshot") == len(old) - len(kept_old)


def test_names_in_one_second_keep_their_order_after_pruning(tmp_path: Path) -> None:
    now = datetime(2026, 11, 22, 19, 27, 10, tzinfo=UTC)
    job = JobSpec(name="snap", source=str(tmp_path), method="snapshot", keep_last=2)
    made = []
    for _ in range(12):
        name = new_stamp(tmp_path, now)
        (tmp_path / name).mkdir()
        made.append(name)
        for old in set(snapshots(tmp_path)) - to_keep(snapshots(tmp_path), job):
            (tmp_path / old).rmdir()
    # The newest two survive every prune, and -10 sorts after -9, not before -2.
    assert snapshots(tmp_path) == made[-2:] == ["2026-11-22T192710Z-11", "2026-11-22T192710Z-12"]
