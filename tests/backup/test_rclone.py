"""Mirror to an rclone remote: a real rclone sftp server on loopback stands in for b2:."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.backup.conftest import Home, RcloneRemote, ask, daemon
from tests.support import free_port


def test_rclone_mirror_with_filters_verify_and_restore(
    home: Home, source: Path, rclone_remote: RcloneRemote
) -> None:
    home.write(
        [
            {
                "name": "cloud",
                "source": str(source),
                "target": "b2test:bucket/cloud",
                "excludes": ["cache/**"],
            }
        ],
        rclone_config=str(rclone_remote.conf),
    )
    result = home.cli("backup", "run", "cloud")
    assert result.returncode == 0, result.stderr
    stored = rclone_remote.served / "bucket" / "cloud"
    assert (stored / "notes" / "c.md").read_text() == "# notes\n"
    assert not (stored / "cache").exists()
    run = home.history("cloud")[-1]
    assert run["tool"] == "rclone"
    assert run["result"] == "ok"
    assert run["files_transferred"] == 4
    assert run["files_total"] == 4
    assert run["total_size"] == 6 + 3002 + 8 + 2002
    assert run["bytes_transferred"] == run["total_size"]

    (source / "a.txt").unlink()
    assert home.cli("backup", "run", "cloud").returncode == 0
    assert not (stored / "a.txt").exists()
    assert home.history("cloud")[-1]["bytes_added"] == -6

    dest = home.tmp / "back"
    restored = home.cli("backup", "restore", "cloud", dest)
    assert restored.returncode == 0, restored.stderr
    assert (dest / "notes" / "c.md").read_text() == "# notes\n"

    assert home.cli("backup", "verify", "cloud").returncode == 0
    # Same size, other bytes (the server caches sizes): only reading the data notices.
    (stored / "b.jpg").write_bytes(b"X" * 3002)
    bad = home.cli("backup", "verify", "cloud")
    assert bad.returncode == 1
    assert "b.jpg" in bad.stdout


def test_rclone_include_from(home: Home, source: Path, rclone_remote: RcloneRemote) -> None:
    patterns = home.tmp / "include.txt"
    patterns.write_text("*.jpg\n")
    home.write(
        [
            {
                "name": "pics",
                "source": str(source),
                "target": "b2test:bucket/pics",
                "include_from": str(patterns),
            }
        ],
        rclone_config=str(rclone_remote.conf),
    )
    assert home.cli("backup", "run", "pics").returncode == 0
    stored = rclone_remote.served / "bucket" / "pics"
    found = {str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file()}
    assert found == {"b.jpg", "photos/2024/d.jpg"}


def rclone_remote_conf_text(port: int) -> str:
    obscured = subprocess.run(
        ["rclone", "obscure", "pw"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"[b2test]\ntype = sftp\nhost = 127.0.0.1\nport = {port}\nuser = x\npass = {obscured}\n"


def test_unreachable_rclone_remote_is_an_error(home: Home, source: Path) -> None:
    conf = home.tmp / "rclone.conf"
    conf.write_text(rclone_remote_conf_text(free_port()))
    home.write(
        [{"name": "cloud", "source": str(source), "target": "b2test:bucket/cloud"}],
        rclone_config=str(conf),
    )
    begun = time.monotonic()
    result = home.cli("backup", "run", "cloud")
    # Fails fast: asking the dead remote for its free space must not retry for long.
    assert time.monotonic() - begun < 8
    assert result.returncode == 1
    run = home.history("cloud")[-1]
    assert run["result"] == "error"
    assert run["free_before"] is None
    assert run["exit_code"] != 0
    assert any("connection refused" in line.lower() for line in run["errors"])


def test_free_space_of_an_rclone_remote(
    home: Home, source: Path, rclone_remote: RcloneRemote
) -> None:
    # An sftp remote with a shell answers `rclone about` (rclone's server runs df);
    # the memory backend cannot, so its runs say null.
    conf = rclone_remote.conf
    text = conf.read_text()
    nas = text.replace("[b2test]", "[nas]").replace("shell_type = none\n", "")
    conf.write_text(f"{text}\n{nas}\n[scratch]\ntype = memory\n")
    home.write(
        [
            {"name": "cloud", "source": str(source), "target": "nas:bucket/cloud"},
            {"name": "mem", "source": str(source), "target": "scratch:bucket"},
        ],
        rclone_config=str(conf),
    )
    assert home.cli("backup", "run", "cloud").returncode == 0
    run = home.history("cloud")[-1]
    disk = shutil.disk_usage(rclone_remote.served)
    for key in ("free_before", "free_after"):
        assert isinstance(run[key], int)
        assert abs(run[key] - disk.free) < disk.total // 100  # the served disk's free space
    assert home.cli("backup", "run", "mem").returncode == 0
    mem = home.history("mem")[-1]
    assert mem["result"] == "ok"
    assert mem["free_before"] is None
    assert mem["free_after"] is None
    # DriveStats over the WebSocket API tells the same.
    with daemon(home) as url, home.client(url) as ws:
        cloud = ask(ws, {"request": "DriveStats", "Name": "cloud"})
        assert cloud["Result"] == "Success"
        assert abs(cloud["Target"]["free"] - disk.free) < disk.total // 100
        assert cloud["Target"]["total"] == disk.total
        assert ask(ws, {"request": "DriveStats", "Name": "mem"})["Target"] is None
