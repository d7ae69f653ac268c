"""kill -9 of the client or of the server mid-sync: no partial file is ever visible, and the
trees converge after a restart."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support import HOMEKEEP, clean_env, create_token, free_port, running
from tests.sync.helpers import push, same_tree, snapshot, sync_server

MiB = 1 << 20


def _tree(src: Path, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    sizes = {}
    for i in range(24):
        rel = f"big/{i:02d}.bin"
        sizes[rel] = 2 * MiB + rng.randrange(MiB)
    for i in range(300):
        sizes[f"small/{i % 10}/{i}.txt"] = rng.randrange(1, 5000)
    for rel, size in sizes.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return sizes


class Inspector(threading.Thread):
    """Reads the server's copy over and over; records any file that is not whole."""

    def __init__(self, dst: Path, src: Path) -> None:
        super().__init__(daemon=True)
        self.dst, self.src = dst, src
        self.stop = threading.Event()
        self.partial: list[str] = []
        self.looks = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for dirpath, _, files in os.walk(self.dst):
                for name in files:
                    path = Path(dirpath) / name
                    rel = path.relative_to(self.dst)
                    try:
                        data = path.read_bytes()
                    except OSError:
                        continue
                    self.looks += 1
                    if data != (self.src / rel).read_bytes():
                        self.partial.append(f"{rel}: {len(data)} bytes")
            time.sleep(0.01)


def _when_data_arrives(root: Path, timeout: float = 30) -> None:
    """Wait until the server has received some data: a staged pack, a temp file or a file."""
    deadline = time.monotonic() + timeout
    state = root / ".homekeep-sync"
    while time.monotonic() < deadline:
        for folder in (state / "staging", state / "tmp", root / "laptop"):
            if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
                return
        time.sleep(0.01)
    raise AssertionError("the server received nothing")


def _start_push(src: Path, url: str, token: str, name: str) -> subprocess.Popen[bytes]:
    cmd = [
        *HOMEKEEP,
        "--data-dir",
        str(src.parent / f"client-data-{name}"),
        "sync",
        "push",
        str(src),
        "--server",
        url,
        "--token",
        token,
        "--name",
        name,
        "--wait",
        "60",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env())


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_of_the_client_mid_sync(tmp_path: Path, seed: int) -> None:
    src = tmp_path / "src"
    _tree(src, seed)
    rng = random.Random(seed)
    with sync_server(tmp_path) as srv:
        inspector = Inspector(srv.root / "laptop", src)
        inspector.start()
        for _ in range(2):
            proc = _start_push(src, srv.url, srv.token, "laptop")
            _when_data_arrives(srv.root)
            time.sleep(rng.uniform(0, 0.5))
            proc.kill()
            proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()
        summary = push(src, srv, "laptop")
        inspector.stop.set()
        inspector.join(timeout=10)
        assert inspector.partial == []
        assert inspector.looks > 0
        assert snapshot(srv.root / "laptop") == snapshot(src)
        assert summary["data_bytes_sent"] < summary["bytes_scanned"] * 0.9


@pytest.mark.parametrize("seed", [3])
def test_kill_9_of_the_server_mid_sync(tmp_path: Path, seed: int) -> None:
    src = tmp_path / "src"
    _tree(src, seed)
    rng = random.Random(seed)
    data = tmp_path / "server-data"
    root = tmp_path / "server"
    token = create_token(data, "laptop", "sync")
    port = free_port()
    args: list[str | Path] = ["sync", "server", root, "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    inspector = Inspector(root / "laptop", src)
    inspector.start()
    proc = None
    try:
        with running(args, data_dir=data) as first:
            proc = _start_push(src, url, token, "laptop")
            _when_data_arrives(root)
            time.sleep(rng.uniform(0, 0.5))
            first.process.kill()
            first.process.wait(timeout=10)
        time.sleep(0.5)
        with running(args, data_dir=data):
            assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
            inspector.stop.set()
            inspector.join(timeout=10)
            assert inspector.partial == []
            assert same_tree(src, root / "laptop")
            assert list((root / ".homekeep-sync/tmp").iterdir()) == []
    finally:
        inspector.stop.set()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()


def test_a_crash_between_placing_and_recording_is_forgotten(tmp_path: Path) -> None:
    """The window the review found: a batch's files are renamed into place, then the server
    dies before their index rows are written. The rows still describe the old content; at
    the next start the server forgets them (the journal says which), and the client sends
    those files again. Nothing is ever built from a row that lies."""
    import sqlite3

    from blake3 import blake3

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"the old content\n" * 100)
    (src / "b.txt").write_bytes(b"untouched\n")
    with sync_server(tmp_path) as srv:
        push(src, srv)
        root = srv.root
    # what the crash leaves: the new content in place, the journal row, the old index row
    new = b"the new content, placed but not recorded\n" * 50
    (root / "laptop" / "a.txt").write_bytes(new)
    (src / "a.txt").write_bytes(new)
    index = root / ".homekeep-sync" / "index.sqlite"
    with sqlite3.connect(index) as db:
        db.execute("INSERT INTO placing (client, path) VALUES ('laptop', 'a.txt')")
    db.close()
    with sync_server(tmp_path, token_name="laptop-again") as srv:
        with sqlite3.connect(index) as db:
            paths = {row[0] for row in db.execute("SELECT path FROM entries")}
            journal = db.execute("SELECT COUNT(*) FROM placing").fetchone()[0]
        db.close()
        assert "a.txt" not in paths
        assert "b.txt" in paths
        assert journal == 0
        summary = push(src, srv)
        assert summary["files_sent"] == 1
        with sqlite3.connect(index) as db:
            row = db.execute("SELECT hash FROM entries WHERE path = 'a.txt'").fetchone()
        db.close()
        assert row[0] == blake3(new).hexdigest()
        assert snapshot(srv.root / "laptop") == snapshot(src)


def test_folder_mtimes_are_restored_when_the_server_starts(tmp_path: Path) -> None:
    """A server killed after recording files but before giving their folders back their
    mtimes: the client sees the right mtimes in the manifest and sends nothing, so the
    next server puts every recorded folder mtime back when it starts."""
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f.txt").write_text("x")
    (src / "top.txt").write_text("y")
    for folder in (src / "a" / "b", src / "a", src):
        os.utime(folder, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    with sync_server(tmp_path) as srv:
        push(src, srv)
        root = srv.root
        srv.server.stop(signal.SIGKILL)  # no clean stop: the next start repairs
    for folder in (root / "laptop" / "a" / "b", root / "laptop" / "a", root / "laptop"):
        os.utime(folder)  # what placing a file leaves: now
    with sync_server(tmp_path, token_name="laptop-again") as srv:
        assert snapshot(srv.root / "laptop") == snapshot(src)
        again = push(src, srv)
        assert again["files_sent"] == 0
        assert snapshot(srv.root / "laptop") == snapshot(src)
