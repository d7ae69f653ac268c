"""kill -9 of the server while a client sends to a shared folder: after a restart the
pass finishes, and a second client receives exactly the sender's tree."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support import HOMEKEEP, clean_env, free_port, run_cli, running
from tests.sync.helpers import sync_token, wait_until
from tests.sync.test_crash import _tree


def _pass_cmd(folder: Path, url: str, token: str, device: str) -> list[str]:
    return [
        *HOMEKEEP,
        "--data-dir",
        str(folder.parent / f"data-{device}"),
        "sync",
        "push",
        str(folder),
        "--server",
        url,
        "--token",
        token,
        "--name",
        device,
        "--folder",
        "docs",
        "--wait",
        "60",
    ]


def _contents(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content (a shared folder's own files aside)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).parts[0].startswith(".homekeep-")
    }


def _received_something(folder: Path) -> bool:
    return any(p.is_file() and p.name != ".homekeep-folder" for p in folder.rglob("*"))


def test_kill_9_of_the_server_mid_shared_sync(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _tree(a, 5)
    b.mkdir()
    data, root = tmp_path / "server-data", tmp_path / "server"
    token = sync_token(data, "family", "docs")
    port = free_port()
    args: list[str | Path] = ["sync", "server", root, "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    made = run_cli("sync", "share", "docs", root, data_dir=data)
    assert made.returncode == 0, made.stderr
    sender = None
    try:
        with running(args, data_dir=data) as first:
            sender = subprocess.Popen(
                _pass_cmd(a, url, token, "laptop"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=clean_env(),
            )
            assert wait_until(lambda: _received_something(root / "docs"), 60, 0.01)
            first.process.kill()
            first.process.wait(timeout=10)
        time.sleep(0.5)
        with running(args, data_dir=data):
            assert sender.wait(timeout=180) == 0, sender.stderr.read() if sender.stderr else ""
            second = run_cli(*_pass_cmd(b, url, token, "desk")[3:-2], data_dir=None)
            assert second.returncode == 0, second.stderr
            assert _contents(a) == _contents(b) == _contents(root / "docs")
            assert list((root / ".homekeep-sync" / "tmp").iterdir()) == []
    finally:
        if sender is not None:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
            if sender.stderr is not None:
                sender.stderr.close()
