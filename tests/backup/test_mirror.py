"""Mirror jobs with real rsync: local, ssh-style host:path, rsync:// daemon, a share."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from tests.backup.conftest import Home, RsyncDaemon


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_local_mirror_copies_excludes_and_propagates_deletions(home: Home, source: Path) -> None:
    home.write([{"name": "docs", "source": str(source), "excludes": ["cache/", "*.tmp"]}])
    first = home.cli("backup", "run", "docs")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("docs: ok in ")
    dest = home.root / "docs"
    assert files_under(dest) == {"a.txt", "b.jpg", "notes/c.md", "photos/2024/d.jpg"}

    (source / "a.txt").unlink()
    (source / "new.txt").write_text("new\n")
    second = home.cli("backup", "run", "docs")
    assert second.returncode == 0, second.stderr
    assert files_under(dest) == {"new.txt", "b.jpg", "notes/c.md", "photos/2024/d.jpg"}

    runs = home.history("docs")
    assert [r["result"] for r in runs] == ["ok", "ok"]
    assert runs[0]["files_total"] == 4
    assert runs[0]["files_transferred"] == 4
    assert runs[1]["files_transferred"] == 1
    assert runs[0]["total_size"] == 6 + 3002 + 8 + 2002
    assert runs[1]["bytes_added"] == 4 - 6
    assert runs[0]["started_at"] <= runs[0]["finished_at"]
    assert runs[0]["free_before"] > 0
    assert runs[0]["free_after"] > 0
    assert Path(runs[0]["log_file"]).read_text().count("$ ") == 1


def test_include_from_backs_up_only_matching_files(home: Home, source: Path) -> None:
    patterns = home.tmp / "only-photos.txt"
    patterns.write_text("*.jpg\n")
    home.write(
        [
            {
                "name": "pics",
                "source": str(source),
                "include_from": str(patterns),
                "excludes": ["photos/"],
            }
        ]
    )
    result = home.cli("backup", "run", "pics")
    assert result.returncode == 0, result.stderr
    # Only the .jpg outside the excluded folder; empty folders are pruned.
    assert files_under(home.root / "pics") == {"b.jpg"}
    assert not (home.root / "pics" / "notes").exists()
    # verify applies the same filters: files left out on purpose are not differences.
    verify = home.cli("backup", "verify", "pics")
    assert verify.returncode == 0, verify.stdout
    (home.root / "pics" / "b.jpg").write_bytes(b"\0" * (source / "b.jpg").stat().st_size)
    changed = home.cli("backup", "verify", "pics")
    assert changed.returncode == 1
    assert "b.jpg" in changed.stdout
    restored = home.cli("backup", "restore", "pics", home.tmp / "back")
    assert restored.returncode == 0, restored.stderr
    assert files_under(home.tmp / "back") == {"b.jpg"}


def test_max_delete_guard_stops_mass_deletion(home: Home, source: Path) -> None:
    home.write([{"name": "docs", "source": str(source), "max_delete": 1}])
    assert home.cli("backup", "run", "docs").returncode == 0
    for rel in ("a.txt", "b.jpg", "notes/c.md"):
        (source / rel).unlink()
    result = home.cli("backup", "run", "docs")
    assert result.returncode == 1
    assert result.stderr.startswith("error: backup failed: docs")
    run = home.history("docs")[-1]
    assert run["result"] == "error"
    assert run["exit_code"] == 25
    assert len(files_under(home.root / "docs")) >= 4


def test_backup_dir_keeps_replaced_files(home: Home, source: Path) -> None:
    keep = home.tmp / "replaced"
    home.write([{"name": "docs", "source": str(source), "backup_dir": str(keep)}])
    assert home.cli("backup", "run", "docs").returncode == 0
    (source / "a.txt").write_text("changed\n")
    (source / "notes" / "c.md").unlink()
    assert home.cli("backup", "run", "docs").returncode == 0
    assert (keep / "a.txt").read_text() == "alpha\n"
    assert (keep / "notes" / "c.md").exists()
    assert (home.root / "docs" / "a.txt").read_text() == "changed\n"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "is missing"),
        ("empty", "is empty"),
        ("file", "is missing or not a directory"),
    ],
)
def test_bad_source_is_refused_and_recorded(
    home: Home, tmp_path: Path, setup: str, message: str
) -> None:
    src = tmp_path / "gone"
    if setup == "empty":
        src.mkdir()
    elif setup == "file":
        src.write_text("x")
    home.write([{"name": "docs", "source": str(src)}])
    (home.root / "docs").mkdir(parents=True)
    (home.root / "docs" / "precious").write_text("keep me")
    result = home.cli("backup", "run", "docs")
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert (home.root / "docs" / "precious").read_text() == "keep me"
    run = home.history("docs")[-1]
    assert run["result"] == "error"
    assert message in run["errors"][0]


def test_share_target_must_be_mounted(home: Home, source: Path, tmp_path: Path) -> None:
    share = tmp_path / "nas"
    share.mkdir()
    home.write(
        [
            {
                "name": "nas",
                "source": str(source),
                "target": str(share / "docs"),
                "mount_point": str(share),
            }
        ]
    )
    result = home.cli("backup", "run", "nas")
    assert result.returncode == 1
    assert "is not mounted" in result.stderr
    assert not (share / "docs").exists()


def test_share_target_on_a_mount_point_runs(home: Home, source: Path) -> None:
    mounts = [m for m in ("/dev/shm", "/tmp", "/") if os.path.ismount(m) and os.access(m, os.W_OK)]
    if not mounts:
        pytest.skip("no writable mount point to stand in for a network share")
    mount = Path(mounts[0])
    with tempfile.TemporaryDirectory(dir=mount) as share:
        home.write(
            [
                {
                    "name": "nas",
                    "source": str(source),
                    "target": f"{share}/docs",
                    "mount_point": str(mount),
                }
            ],
            allowed_roots=[str(source), share],
        )
        result = home.cli("backup", "run", "nas")
        assert result.returncode == 0, result.stderr
        assert (Path(share) / "docs" / "a.txt").read_text() == "alpha\n"


def test_host_path_target_over_a_remote_shell(home: Home, source: Path, tmp_path: Path) -> None:
    # A remote shell that runs the command on this machine stands in for ssh.
    shell = tmp_path / "fake-ssh"
    shell.write_text('#!/bin/sh\nshift\nexec sh -c "$*"\n')
    shell.chmod(shell.stat().st_mode | stat.S_IXUSR)
    remote = tmp_path / "remote-disk"
    home.write(
        [
            {
                "name": "far",
                "source": str(source),
                "target": f"nas.lan:{remote}/far",
                "ssh_command": str(shell),
            }
        ]
    )
    result = home.cli("backup", "run", "far")
    assert result.returncode == 0, result.stderr
    assert (remote / "far" / "notes" / "c.md").read_text() == "# notes\n"
    assert home.history("far")[-1]["target"] == f"nas.lan:{remote}/far"
    # verify and restore go through the same remote shell.
    verify = home.cli("backup", "verify", "far")
    assert verify.returncode == 0, verify.stderr
    assert "matches" in verify.stdout
    (remote / "far" / "notes" / "c.md").write_text("# NOTES\n")  # same size, other bytes
    changed = home.cli("backup", "verify", "far")
    assert changed.returncode == 1
    assert "notes/c.md" in changed.stdout
    restored = home.cli("backup", "restore", "far", tmp_path / "back")
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "back" / "notes" / "c.md").read_text() == "# NOTES\n"


def test_rsync_daemon_target(home: Home, source: Path, rsync_daemon: RsyncDaemon) -> None:
    home.write([{"name": "d", "source": str(source), "target": f"{rsync_daemon.url}/d"}])
    result = home.cli("backup", "run", "d")
    assert result.returncode == 0, result.stderr
    assert (rsync_daemon.path / "d" / "a.txt").read_text() == "alpha\n"
    verify = home.cli("backup", "verify", "d")
    assert verify.returncode == 0, verify.stderr
    assert "matches" in verify.stdout
    restored = home.cli("backup", "restore", "d", home.tmp / "back")
    assert restored.returncode == 0, restored.stderr
    assert (home.tmp / "back" / "photos" / "2024" / "d.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_unreachable_rsync_daemon_is_an_error(home: Home, source: Path) -> None:
    from tests.support import free_port

    home.write(
        [
            {
                "name": "d",
                "source": str(source),
                "target": f"rsync://127.0.0.1:{free_port()}/backups/d",
            }
        ]
    )
    result = home.cli("backup", "run", "d")
    assert result.returncode == 1
    run = home.history("d")[-1]
    assert run["result"] == "error"
    assert run["exit_code"] == 10
    assert any("Connection refused" in line for line in run["errors"])


def test_verify_restore_and_plot_before_any_backup_say_so(home: Home, source: Path) -> None:
    home.write([{"name": "docs", "source": str(source)}])
    dest = home.tmp / "back"
    for args in (["verify", "docs"], ["restore", "docs", dest], ["plot", "docs", "-o", dest]):
        result = home.cli("backup", *args)
        assert result.returncode == 3, result.stderr
        assert result.stderr.count("\n") == 1
        assert "run" in result.stderr
        assert not dest.exists()


def test_restore_from_an_unreachable_daemon_is_one_line(home: Home, source: Path) -> None:
    from tests.support import free_port

    target = f"rsync://127.0.0.1:{free_port()}/backups/d"
    home.write([{"name": "d", "source": str(source), "target": target}])
    dest = home.tmp / "back"
    result = home.cli("backup", "restore", "d", dest)
    assert result.returncode == 8
    assert result.stderr.startswith("error: restore failed: ")
    assert "Connection refused" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not dest.exists()  # the folder it made for the restore is gone again


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("SRC", "is the source itself"),
        ("PARENT", "contains the source"),  # never "/" here: a regression would wipe it
        ("SRC/backup", "is inside the source"),
    ],
)
def test_a_target_overlapping_the_source_is_refused(
    home: Home, source: Path, where: str, message: str
) -> None:
    sentinel = source.parent / "keep-me.txt"
    sentinel.write_text("precious\n")
    target = where.replace("SRC", str(source)).replace("PARENT", str(source.parent))
    home.write([{"name": "oops", "source": str(source), "target": target}])
    result = home.cli("backup", "run", "oops")
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert sentinel.read_text() == "precious\n"
    assert not (source / "backup").exists()
