"""`sync watch` as a running process: live changes, outages, two clients, files mid-write."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import HOMEKEEP, clean_env, free_port
from tests.sync.helpers import (
    SyncServer,
    same_tree,
    snapshot,
    sync_server,
    sync_token,
    wait_until,
)


@contextmanager
def watching(
    src: Path,
    url: str,
    token: str,
    name: str,
    env: dict[str, str] | None = None,
    *extra: str,
) -> Iterator[subprocess.Popen[str]]:
    """Run `homekeep -v sync watch` until the block ends, then stop it with SIGTERM."""
    log = (src.parent / f"watch-{name}.log").open("w")
    cmd = [
        *HOMEKEEP,
        "--data-dir",
        str(src.parent / f"client-{name}"),
        "-v",
        "sync",
        "watch",
        str(src),
        "--server",
        url,
        "--token",
        token,
        "--name",
        name,
        *extra,
    ]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=clean_env(env)
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
        assert code == 0, (src.parent / f"watch-{name}.log").read_text()


def test_watch_follows_every_change_live(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "start.txt").write_text("start")
    with sync_server(tmp_path) as srv, watching(src, srv.url, srv.token, "live"):
        dst = srv.root / "live"
        assert wait_until(lambda: same_tree(src, dst))
        steps: list[Callable[[], object]] = [
            lambda: (src / "new.txt").write_text("new"),
            lambda: (src / "start.txt").write_text("modified"),
            lambda: (src / "folder/empty").mkdir(parents=True),
            lambda: (src / "new.txt").rename(src / "folder/moved.txt"),
            lambda: (src / "folder").rename(src / "renamed"),
            lambda: (src / "link").symlink_to("renamed/moved.txt"),
            lambda: (src / "start.txt").chmod(0o600),
            lambda: shutil.rmtree(src / "renamed"),
            lambda: (src / "start.txt").unlink(),
        ]
        for step in steps:
            step()
            assert wait_until(lambda: same_tree(src, dst), timeout=15), snapshot(dst)
    log = (tmp_path / "watch-live.log").read_text()
    assert "renamed folder -> renamed" in log
    assert "deleted start.txt" in log


def test_server_down_at_start_then_up(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "early.txt").write_text("written while the server was down")
    port = free_port()
    token_dir = tmp_path / "server-data"
    token = sync_token(token_dir)
    url = f"http://127.0.0.1:{port}"
    with watching(src, url, token, "late"):
        time.sleep(2)
        (src / "later.txt").write_text("also while down")
        from tests.support import running

        with running(
            ["sync", "server", tmp_path / "server", "--port", str(port)], data_dir=token_dir
        ):
            assert wait_until(lambda: same_tree(src, tmp_path / "server/late"), timeout=40)
            (src / "after.txt").write_text("after it came up")
            assert wait_until(lambda: same_tree(src, tmp_path / "server/late"))
    assert "retrying" in (tmp_path / "watch-late.log").read_text()


def test_two_clients_at_once(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for src, tag in ((a, "a"), (b, "b")):
        src.mkdir()
        for i in range(50):
            (src / f"{tag}{i}.txt").write_text(f"{tag} {i}\n" * 100)
        (src / "shared.bin").write_bytes(b"same on both " * 100_000)
    with (
        sync_server(tmp_path) as srv,
        watching(a, srv.url, srv.token, "alpha"),
        watching(b, srv.url, srv.token, "beta"),
    ):
        for i in range(20):
            (a / f"live-{i}.txt").write_text(str(i))
            (b / f"live-{i}.txt").write_text(str(-i))
        assert wait_until(lambda: same_tree(a, srv.root / "alpha"), timeout=30)
        assert wait_until(lambda: same_tree(b, srv.root / "beta"), timeout=30)


def _watcher(stop: threading.Event, target: Path, final: bytes, seen: list[int]) -> None:
    while not stop.is_set():
        try:
            data = target.read_bytes()
        except OSError:
            time.sleep(0.01)
            continue
        seen.append(len(data))
        assert data == final, f"saw {len(data)} bytes of {len(final)}"
        time.sleep(0.005)


def test_a_file_still_being_written_is_not_sent_torn(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    final = os.urandom(256 * 1024) * 8
    with sync_server(tmp_path) as srv, watching(src, srv.url, srv.token, "slow"):
        assert wait_until(lambda: (srv.root / "slow").is_dir())
        stop = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                _watcher(stop, srv.root / "slow/video.mp4", final, seen)
            except AssertionError as exc:
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        with (src / "video.mp4").open("wb") as fh:
            for i in range(8):
                fh.write(final[i * 256 * 1024 : (i + 1) * 256 * 1024])
                fh.flush()
                time.sleep(0.4)
        assert wait_until(lambda: same_tree(src, srv.root / "slow"), timeout=20)
        stop.set()
        thread.join(timeout=5)
        assert errors == []
        assert seen
        assert set(seen) == {len(final)}


def test_latency_of_a_small_edit_is_under_a_second(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "note.txt").write_text("0")
    with sync_server(tmp_path) as srv, watching(src, srv.url, srv.token, "fast"):
        target = srv.root / "fast/note.txt"
        assert wait_until(target.exists)
        delays = []
        for i in range(1, 6):
            text = f"edit {i}"
            start = time.monotonic()
            (src / "note.txt").write_text(text)
            assert wait_until(lambda t=text: target.exists() and target.read_text() == t, step=0.01)  # type: ignore[misc]
            delays.append(time.monotonic() - start)
        assert sorted(delays)[2] < 1.0, delays


def _server_for(srv: SyncServer) -> SyncServer:
    return srv


def test_periodic_rescan_repairs_a_change_the_events_missed(tmp_path: Path) -> None:
    # A write through a hard link outside the watched folder raises no event for the path
    # inside it (inotify reports to the parent of the name used), like events the kernel
    # dropped: only the periodic full rescan can find the change.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("before")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.link(src / "a.txt", outside / "same-inode")
    env = {"HOMEKEEP_SYNC_RESCAN_INTERVAL_SECONDS": "1"}
    with sync_server(tmp_path) as srv, watching(src, srv.url, srv.token, "rescan", env):
        dst = srv.root / "rescan"
        assert wait_until(lambda: same_tree(src, dst))
        (outside / "same-inode").write_text("after, changed behind the watcher's back")
        assert wait_until(lambda: same_tree(src, dst), timeout=30)
        assert (dst / "a.txt").read_text() == "after, changed behind the watcher's back"
    assert "periodic rescan" in (tmp_path / "watch-rescan.log").read_text()


def test_lost_kernel_events_ask_for_a_rescan() -> None:
    import inspect
    import logging

    from watchdog.observers import inotify_c

    from homekeep.sync.client.watch import Events, _Overflow

    # the signal we listen for is the warning watchdog logs when inotify overflows
    assert "Inotify queue overflowed" in inspect.getsource(inotify_c)
    events = Events(Path("/nonexistent"))
    handler = _Overflow(events)
    logger = logging.getLogger(_Overflow.LOGGER)
    logger.addHandler(handler)
    try:
        logging.getLogger("watchdog.observers.inotify_c.other").warning("unrelated")
        before = events.lost
        logger.warning("Inotify queue overflowed; filesystem events were lost")
        after = events.lost
        assert not before
        assert after
        assert events.wakeup.is_set()
    finally:
        logger.removeHandler(handler)
