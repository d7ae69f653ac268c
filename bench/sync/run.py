"""Benchmark `homekeep sync` against an rsync daemon on loopback, on the same trees.

    python bench/sync/run.py                      # full scale (10,000 + 4 x 256 MiB, 100k rescan)
    python bench/sync/run.py --small 2000 --large-mb 32 --rescan 20000 --edits 20   # quick

(a) first sync of a mixed tree: wall time, ours / rsync -a
(b) edits: bytes on the wire (both directions, counted by a TCP proxy), ours / rsync
(c) change-to-server latency of one small edit while `sync watch` runs, p50 / p95
(d) rescan of an unchanged tree of many files: time and peak memory of the client
(upgrade) real release upgrades of real projects' sources (sdists fetched by pip into a cache
    dir): the old release pushed, the new one copied over it and pushed; bytes and time of
    ours, rsync -a, rsync -az and rsync -a --fsync (durable files, as ours)
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

HOMEKEEP = [sys.executable, "-m", "homekeep"]
MiB = 1 << 20


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOMEKEEP_")}
    clean["NO_PROXY"] = "*"
    return clean | extra


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(cmd: list[str], **extra_env: str) -> tuple[float, int, str]:
    """Run a command; return (seconds, its peak RSS in KiB, stdout).

    The peak is the kernel's high-water mark (VmHWM) of the process, sampled every 5 ms:
    wait4's ru_maxrss would include what the child inherited from this big parent.
    """
    start = time.monotonic()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env(**extra_env))
        peak = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.005)
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:6])}... failed: {err.read().decode()[-400:]}")
        out.seek(0)
        return seconds, peak, out.read().decode()


def write_random(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(left, 4 * MiB)
            fh.write(rng.randbytes(n))
            left -= n


def make_mixed(root: Path, small: int, large: int, large_mb: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    total = 0
    for i in range(small):
        size = rng.randrange(100, 16 * 1024)
        path = root / "small" / f"d{i // 200:03d}" / f"f{i:05d}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        total += size
    for i in range(large):
        write_random(root / "large" / f"big{i}.bin", large_mb * MiB, rng)
        total += large_mb * MiB
    return total


class CountingProxy:
    """A TCP proxy on loopback that counts the bytes crossing it in both directions."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.bytes = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                with self.lock:
                    self.bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def take(self) -> int:
        time.sleep(0.2)
        with self.lock:
            value, self.bytes = self.bytes, 0
        return value


@contextmanager
def sync_server(work: Path, suffix: str = "", *extra: str) -> Iterator[tuple[str, str, int, int]]:
    """A fresh `homekeep sync server`: (url, token, port, pid), stopped with SIGTERM."""
    data = work / f"hk-server-data{suffix}"
    create = ["token", "create", "bench", "--scope", "sync", "--client", "*"]  # any name
    _, _, token = run([*HOMEKEEP, "--data-dir", str(data), *create])
    proc = subprocess.Popen(
        [
            *HOMEKEEP,
            "--data-dir",
            str(data),
            "sync",
            "server",
            str(work / f"hk-dst{suffix}"),
            "--port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"sync server did not start: {line}")
    try:
        yield match[0], token.strip(), int(match[1]), proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@contextmanager
def rsync_daemon(work: Path, modules: dict[str, Path] | None = None) -> Iterator[int]:
    """An rsync daemon on loopback serving ``modules`` (default: "bench", a new folder)."""
    if modules is None:
        modules = {"bench": work / "rsync-dst"}
        modules["bench"].mkdir()
    conf = work / "rsyncd.conf"
    conf.write_text(
        f"use chroot = no\npid file = {work}/rsyncd.pid\nuid = {os.getuid()}\ngid = {os.getgid()}\n"
        + "".join(f"[{name}]\npath = {path}\nread only = false\n" for name, path in modules.items())
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            "rsync",
            "--daemon",
            "--no-detach",
            f"--config={conf}",
            f"--port={port}",
            "--address=127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def hk_push(
    src: Path, url: str, token: str, name: str, work: Path, **extra_env: str
) -> tuple[float, int, dict[str, Any]]:
    seconds, rss, out = run(
        [
            *HOMEKEEP,
            "--data-dir",
            str(work / f"hk-client-{name}"),
            "sync",
            "push",
            str(src),
            "--server",
            url,
            "--token",
            token,
            "--name",
            name,
            "--json",
        ],
        **extra_env,
    )
    return seconds, rss, json.loads(out)


def durable_copy(src: Path, dest: Path) -> tuple[float, int, str]:
    """The disk's floor: every byte of the tree written to one file, then fsync'ed."""
    start = time.monotonic()
    with dest.open("wb") as out:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                out.write(path.read_bytes())
        out.flush()
        os.fsync(out.fileno())
    seconds = time.monotonic() - start
    dest.unlink()
    return seconds, 0, ""


def rsync_push(src: Path, port: int, sub: str, *extra: str) -> tuple[float, int, str]:
    url = f"rsync://127.0.0.1:{port}/bench/{sub}/"
    return run(["rsync", "-a", "--delete", "--stats", *extra, f"{src}/", url])


T = TypeVar("T")


def settled(timed: Callable[[], T]) -> T:
    """Run ``timed`` after writing back every dirty page: no tool pays for the last one's."""
    os.sync()
    time.sleep(0.5)
    return timed()


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def bench_first_and_edits(
    work: Path, args: argparse.Namespace, url: str, token: str, hk_port: int, rsync_port: int
) -> None:
    src = work / "mixed"
    total = make_mixed(src, args.small, args.large, args.large_mb)
    files = args.small + args.large
    times: dict[str, list[float]] = {"rsync": [], "fsync": [], "hk": [], "disk": []}
    for i in range(args.repeat):
        # the first round leaves "mixed" on both servers for the edits below; later rounds
        # use fresh destinations (a second push to the same server would be deduplicated).
        # Who goes first alternates: on this VM the first big writer after a pause finds
        # warm pages, the next one pays the host for fresh ones (several times slower).
        sub = "mixed" if i == 0 else f"mixed-{i}"
        summary: dict[str, Any] = {}

        def ours(i: int = i, sub: str = sub, summary: dict[str, Any] = summary) -> None:
            if i == 0:
                seconds, _, got = settled(partial(hk_push, src, url, token, "mixed", work))
            else:
                with sync_server(work, f"-{i}") as (url_i, token_i, _, _):
                    seconds, _, got = settled(partial(hk_push, src, url_i, token_i, sub, work))
                shutil.rmtree(work / f"hk-dst-{i}", ignore_errors=True)
            summary.update(got)
            times["hk"].append(seconds)

        def theirs(sub: str = sub) -> None:
            times["rsync"].append(settled(partial(rsync_push, src, rsync_port, sub))[0])
            fsynced = partial(rsync_push, src, rsync_port, f"{sub}-f", "--fsync")
            times["fsync"].append(settled(fsynced)[0])
            times["disk"].append(settled(partial(durable_copy, src, work / "durable.bin"))[0])

        for step in (theirs, ours) if i % 2 == 0 else (ours, theirs):
            step()
        assert summary["files_sent"] == files, summary
        if i:
            shutil.rmtree(work / "rsync-dst" / sub, ignore_errors=True)
        shutil.rmtree(work / "rsync-dst" / f"{sub}-f", ignore_errors=True)
        print(
            f"  round {i + 1} ({'rsync' if i % 2 == 0 else 'homekeep'} first): rsync -a "
            f"{times['rsync'][-1]:.2f} s, --fsync {times['fsync'][-1]:.2f} s, homekeep "
            f"{times['hk'][-1]:.2f} s, disk floor {times['disk'][-1]:.2f} s",
            flush=True,
        )
    rs_s, rsf_s, hk_s, disk_s = (
        statistics.median(times[k]) for k in ("rsync", "fsync", "hk", "disk")
    )
    rate = total / MiB
    table(
        f"(a) first sync: {files} files, {human(total)}; median of {args.repeat} rounds "
        "(who goes first alternates), each run started after a sync",
        ["tool", "seconds", "MB/s", "ours / this"],
        [
            ["rsync -a (daemon)", f"{rs_s:.2f}", f"{rate / rs_s:.0f}", f"{hk_s / rs_s:.2f}"],
            [
                "rsync -a --fsync (the durability we give)",
                f"{rsf_s:.2f}",
                f"{rate / rsf_s:.0f}",
                f"{hk_s / rsf_s:.2f}",
            ],
            ["homekeep sync push", f"{hk_s:.2f}", f"{rate / hk_s:.0f}", "1.00"],
            [
                "floor: the same bytes written to one file and fsync'ed (no sync at all)",
                f"{disk_s:.2f}",
                f"{rate / disk_s:.0f}",
                f"{hk_s / disk_s:.2f}",
            ],
        ],
    )
    hk_proxy, rs_proxy = CountingProxy(hk_port), CountingProxy(rsync_port)
    hk_url = f"http://127.0.0.1:{hk_proxy.port}"
    big = sorted((src / "large").iterdir())
    rng = random.Random(11)

    def insert() -> None:
        data = big[0].read_bytes()
        mid = len(data) // 2 + 4321
        big[0].write_bytes(data[:mid] + rng.randbytes(100) + data[mid:])

    def append() -> None:
        with big[min(1, len(big) - 1)].open("ab") as fh:
            fh.write(rng.randbytes(MiB))

    def rename() -> None:
        (src / "small/d000").rename(src / "small/d000-renamed")

    def copy() -> None:
        shutil.copy2(big[-1], src / "large/copy-of-last.bin")

    rows = []
    for label, edit in [
        ("insert 100 B in the middle of a large file", insert),
        ("append 1 MiB to a large file", append),
        ("rename a folder of 200 small files", rename),
        ("copy a large file", copy),
    ]:
        edit()
        hk_proxy.take()
        rs_proxy.take()
        _, _, summary = hk_push(src, hk_url, token, "mixed", work)
        hk_wire = hk_proxy.take()
        run(
            [
                "rsync",
                "-a",
                "--delete",
                f"{src}/",
                f"rsync://127.0.0.1:{rs_proxy.port}/bench/mixed/",
            ]
        )
        rs_wire = rs_proxy.take()
        rows.append(
            [
                label,
                human(rs_wire),
                human(hk_wire),
                human(summary["data_bytes_sent"]),
                f"{hk_wire / max(rs_wire, 1):.3f}",
            ]
        )
    table(
        "(b) edits: bytes on the wire, both directions (TCP proxy count)",
        ["edit", "rsync -a", "homekeep", "homekeep data bytes", "ratio (ours / rsync)"],
        rows,
    )


def bench_latency(work: Path, args: argparse.Namespace, url: str, token: str) -> None:
    src = work / "live"
    src.mkdir()
    (src / "note.txt").write_text("start")
    target = work / "hk-dst" / "live" / "note.txt"
    log = (work / "watch.log").open("w")
    proc = subprocess.Popen(
        [
            *HOMEKEEP,
            "--data-dir",
            str(work / "hk-client-live"),
            "sync",
            "watch",
            str(src),
            "--server",
            url,
            "--token",
            token,
            "--name",
            "live",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env(),
    )
    try:
        deadline = time.monotonic() + 30
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        delays = []
        for i in range(args.edits):
            text = f"edit {i} " * 10
            start = time.monotonic()
            (src / "note.txt").write_text(text)
            while time.monotonic() - start < 30:
                try:
                    if target.read_text() == text:
                        break
                except OSError:
                    pass
                time.sleep(0.002)
            delays.append(time.monotonic() - start)
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    q = statistics.quantiles(delays, n=20)
    table(
        f"(c) change-to-server latency while `sync watch` runs ({args.edits} edits)",
        ["p50", "p95", "max", "target"],
        [
            [
                f"{statistics.median(delays):.3f} s",
                f"{q[18]:.3f} s",
                f"{max(delays):.3f} s",
                "p50 < 1 s (Syncthing waits 10 s by default)",
            ]
        ],
    )


def bench_rescan(
    work: Path, args: argparse.Namespace, url: str, token: str, rsync_port: int
) -> None:
    src = work / "many"
    for i in range(args.rescan):
        folder = src / f"d{i // 1000:03d}" / f"e{(i // 100) % 10}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.txt").write_text(f"{i}\n")
    first_s, _, _ = hk_push(src, url, token, "many", work)
    rsync_push(src, rsync_port, "many")
    hk_s, hk_rss, summary = hk_push(src, url, token, "many", work)
    assert summary["files_sent"] == 0, summary
    rs_s, rs_rss, _ = rsync_push(src, rsync_port, "many")
    table(
        f"(d) rescan of an unchanged tree of {args.rescan} files (first sync took {first_s:.1f} s)",
        ["tool", "seconds", "peak RSS of the client"],
        [
            ["rsync -a (daemon)", f"{rs_s:.2f}", human(rs_rss * 1024)],
            ["homekeep sync push", f"{hk_s:.2f}", human(hk_rss * 1024)],
            ["ratio (ours / rsync)", f"{hk_s / rs_s:.2f}", f"{hk_rss / max(rs_rss, 1):.2f}"],
        ],
    )


def write_huge(path: Path, size: int, seed: int = 0) -> None:
    """Write ``size`` bytes of incompressible, non-repeating data quickly (BLAKE3's XOF);
    files of different ``seed`` share no block."""
    from blake3 import blake3

    block = 64 * MiB
    with path.open("wb") as fh:
        written = 0
        index = 0
        while written < size:
            n = min(block, size - written)
            key = seed.to_bytes(8, "little") + index.to_bytes(8, "little")
            fh.write(blake3(key).digest(length=n))
            written += n
            index += 1


def hwm_kib(pid: int) -> int:
    """The peak RSS (VmHWM) of a running process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def rsync_wire(stats: str) -> int:
    """Bytes both ways, from rsync's --stats."""
    total = 0
    for key in ("Total bytes sent", "Total bytes received"):
        found = re.search(rf"{key}: ([\d,]+)", stats)
        total += int(found.group(1).replace(",", "")) if found else 0
    return total


def reset_hwm(pid: int) -> None:
    """Start a process's peak RSS (VmHWM) over from its current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def insert_middle(path: Path, text: bytes) -> None:
    """Insert ``text`` in the middle of a file, a block at a time (constant memory)."""
    size = path.stat().st_size
    tmp = path.with_name(path.name + ".new")
    with path.open("rb") as src, tmp.open("wb") as out:
        left = size // 2
        while left:
            block = src.read(min(64 * MiB, left))
            out.write(block)
            left -= len(block)
        out.write(text)
        while block := src.read(64 * MiB):
            out.write(block)
    tmp.replace(path)


def bench_huge(work: Path, args: argparse.Namespace, rsync_port: int) -> None:
    """One file of 4 GiB and more, pushed to a fresh server, then edited in the middle and
    pushed again: time, bytes and peak memory of both sides, against rsync."""
    src = work / "huge"
    src.mkdir()
    size = int(args.huge_gb * (1 << 30))
    start = time.monotonic()
    write_huge(src / "huge.bin", size)
    made = time.monotonic() - start
    with sync_server(work, "-huge") as (url, token, _, pid):
        idle = hwm_kib(pid)
        hk_s, hk_rss, summary = hk_push(src, url, token, "huge", work)
        server_peak = hwm_kib(pid)
        pushed = work / "hk-dst-huge" / "huge" / "huge.bin"
        assert pushed.stat().st_size == size, "the pushed file has the wrong size"
        assert summary["files_sent"] == 1, summary
        rs_s, rs_rss, _ = rsync_push(src, rsync_port, "huge")
        insert_middle(src / "huge.bin", b"a few bytes inserted in the middle")
        reset_hwm(pid)
        ed_s, ed_rss, edit = hk_push(src, url, token, "huge", work)
        edit_peak = hwm_kib(pid)
        assert filecmp.cmp(pushed, src / "huge.bin", shallow=False), "the edit did not arrive"
    rs_ed_s, rs_ed_rss, stats = rsync_push(src, rsync_port, "huge")
    rs_wire = rsync_wire(stats)
    table(
        f"(huge) one file of {human(size)} (random, written in {made:.1f} s)",
        ["tool", "step", "seconds", "MB/s", "bytes both ways", "peak RSS client", "server"],
        [
            [
                "rsync -a (daemon)",
                "first",
                f"{rs_s:.2f}",
                f"{size / MiB / rs_s:.0f}",
                "-",
                human(rs_rss * 1024),
                "-",
            ],
            [
                "homekeep sync push",
                "first",
                f"{hk_s:.2f}",
                f"{size / MiB / hk_s:.0f}",
                human(summary["wire_bytes"]),
                human(hk_rss * 1024),
                f"{human(server_peak * 1024)} (idle: {human(idle * 1024)})",
            ],
            [
                "rsync -a (daemon)",
                "insert in the middle",
                f"{rs_ed_s:.2f}",
                "-",
                human(rs_wire),
                human(rs_ed_rss * 1024),
                "-",
            ],
            [
                "homekeep sync push",
                "insert in the middle",
                f"{ed_s:.2f}",
                "-",
                human(edit["wire_bytes"]),
                human(ed_rss * 1024),
                human(edit_peak * 1024),
            ],
        ],
    )


# where pip saves the sdists of real releases, kept between runs (never in the repository)
SDIST_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "homekeep-bench" / "sdists"
)
UPGRADES = ["django:5.0.7:5.1", "sqlalchemy:2.0.30:2.0.31", "sympy:1.12:1.13.0"]


def release(name: str, version: str, cache: Path, work: Path) -> Path:
    """The source tree of one release: its sdist, fetched by pip into ``cache`` once."""
    cache.mkdir(parents=True, exist_ok=True)

    def archive() -> Path | None:
        for path in cache.iterdir():
            if path.name.lower() == f"{name}-{version}.tar.gz".lower():
                return path
        return None

    if archive() is None:
        pip = [sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps"]
        run([*pip, "--no-binary", ":all:", "--disable-pip-version-check", "-d", str(cache)])
    found = archive()
    if found is None:
        raise SystemExit(f"pip saved no sdist of {name}=={version} in {cache}")
    out = work / "releases" / f"{name}-{version}"
    with tarfile.open(found) as tar:
        tar.extractall(out, filter="data")
    (top,) = list(out.iterdir())
    return top


def same_bytes(a: Path, b: Path, skip: frozenset[str] = frozenset()) -> bool:
    """The same names, kinds, link targets and file bytes under ``a`` and ``b``, apart
    from the top-level names in ``skip``."""

    def names(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*")} - {
            p.relative_to(root) for top in skip for p in [root / top, *(root / top).rglob("*")]
        }

    if names(a) != names(b):
        return False
    for rel in names(a):
        x, y = a / rel, b / rel
        if x.is_symlink() or y.is_symlink():
            if not (x.is_symlink() and y.is_symlink() and x.readlink() == y.readlink()):
                return False
        elif x.is_file() and not filecmp.cmp(x, y, shallow=False):
            return False
    return True


# -a and -az as the issue names them; -a --fsync makes each file durable, as homekeep does
RSYNC_RUNS = {"a": ["-a"], "az": ["-az"], "a --fsync": ["-a", "--fsync"]}


def bench_upgrade(work: Path, args: argparse.Namespace, rsync_port: int) -> None:
    """A release upgrade of real sources: bytes both ways (TCP proxies) and wall time."""
    rows = []
    rs_proxy = CountingProxy(rsync_port)
    rs_url = f"rsync://127.0.0.1:{rs_proxy.port}/bench"
    for spec in args.upgrade or UPGRADES:
        name, old, new = spec.split(":")
        old_tree = release(name, old, args.sdist_cache, work)
        new_tree = release(name, new, args.sdist_cache, work)
        files = sum(1 for p in new_tree.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in new_tree.rglob("*") if p.is_file())
        got: dict[str, list[tuple[float, int]]] = {k: [] for k in ("hk", *RSYNC_RUNS)}
        for i in range(args.repeat_upgrade):
            tree = work / f"up-{name}-{i}"
            shutil.copytree(old_tree, tree, symlinks=True)
            # the data port would bypass the proxy: everything over HTTP, counted
            with sync_server(work, f"-up-{name}-{i}", "--data-port", "-1") as (_, token, port, _):
                hk_proxy = CountingProxy(port)
                hk_url = f"http://127.0.0.1:{hk_proxy.port}"
                # rsync sends editor backups (Django has a "backup~"): so do we, here
                push = partial(
                    hk_push, tree, hk_url, token, name, work, HOMEKEEP_SYNC_DEFAULT_EXCLUDES="0"
                )
                push()
                for n, flags in enumerate(RSYNC_RUNS.values()):
                    run(["rsync", *flags, "--delete", f"{tree}/", f"{rs_url}/{name}-{i}-{n}/"])
                run(["rsync", "-a", "--delete", f"{new_tree}/", f"{tree}/"])  # the upgrade
                hk_proxy.take()
                rs_proxy.take()
                seconds, _, summary = settled(push)
                got["hk"].append((seconds, hk_proxy.take()))
                assert not summary["errors"], summary["errors"]
                assert same_bytes(tree, work / f"hk-dst-up-{name}-{i}" / name), "copy differs"
            for n, (key, flags) in enumerate(RSYNC_RUNS.items()):
                cmd = ["rsync", *flags, "--delete", f"{tree}/", f"{rs_url}/{name}-{i}-{n}/"]
                seconds = settled(partial(run, cmd))[0]
                got[key].append((seconds, rs_proxy.take()))
            shutil.rmtree(tree)
            shutil.rmtree(work / f"hk-dst-up-{name}-{i}", ignore_errors=True)
            for n in range(len(RSYNC_RUNS)):
                shutil.rmtree(work / "rsync-dst" / f"{name}-{i}-{n}", ignore_errors=True)
            print(
                f"  {name} {old} -> {new} round {i + 1}: "
                + ", ".join(f"{k} {v[-1][1]} B {v[-1][0]:.2f} s" for k, v in got.items()),
                flush=True,
            )
        med = {
            k: (statistics.median(s for s, _ in v), statistics.median(b for _, b in v))
            for k, v in got.items()
        }
        rows.append(
            [
                f"{name} {old} -> {new} ({files} files, {human(size)})",
                f"{human(med['a'][1])}, {med['a'][0]:.2f} s",
                f"{human(med['az'][1])}, {med['az'][0]:.2f} s",
                f"{med['a --fsync'][0]:.2f} s",
                f"{human(med['hk'][1])}, {med['hk'][0]:.2f} s",
                f"{med['hk'][1] / med['az'][1]:.2f}",
                f"{med['hk'][0] / med['a'][0]:.2f}",
                f"{med['hk'][0] / med['a --fsync'][0]:.2f}",
            ]
        )
    table(
        f"(upgrade) a release copied over the one synced before: bytes both ways (TCP proxy), "
        f"wall time; median of {args.repeat_upgrade}",
        [
            "project",
            "rsync -a",
            "rsync -az",
            "rsync -a --fsync",
            "homekeep",
            "bytes / rsync -az",
            "time / rsync -a",
            "time / rsync -a --fsync",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=10_000, help="small files in the mixed tree")
    parser.add_argument("--large", type=int, default=4, help="large files in the mixed tree")
    parser.add_argument("--large-mb", type=int, default=256, help="size of each large file, MiB")
    parser.add_argument(
        "--repeat", type=int, default=4, help="rounds of the first sync (the median is shown)"
    )
    parser.add_argument("--edits", type=int, default=50, help="edits timed for latency")
    parser.add_argument("--rescan", type=int, default=100_000, help="files in the rescan tree")
    parser.add_argument(
        "--only",
        choices=["ab", "c", "d", "huge", "upgrade"],
        action="append",
        help="run only these parts (huge: one file of --huge-gb, not run by default)",
    )
    parser.add_argument(
        "--upgrade",
        action="append",
        metavar="NAME:OLD:NEW",
        help=f"a release upgrade to sync, repeatable (default: {' '.join(UPGRADES)})",
    )
    parser.add_argument(
        "--repeat-upgrade", type=int, default=3, help="rounds of each upgrade (median shown)"
    )
    parser.add_argument(
        "--sdist-cache",
        type=Path,
        default=SDIST_CACHE,
        help="where pip saves the sdists of part 'upgrade' (kept between runs)",
    )
    parser.add_argument(
        "--huge-gb", type=float, default=4.25, help="size of the one file of part 'huge', GiB"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where to build the trees (default: a temp dir)"
    )
    args = parser.parse_args()
    if shutil.which("rsync") is None:
        raise SystemExit("rsync not found on PATH: apt-get install rsync")
    work = Path(tempfile.mkdtemp(prefix="hk-bench-sync-", dir=args.workdir))
    parts = set(args.only or ["ab", "c", "d", "upgrade"])
    print(f"homekeep sync benchmark; work dir {work}; {os.cpu_count()} CPUs")
    try:
        with sync_server(work) as (url, token, hk_port, _), rsync_daemon(work) as rsync_port:
            if "ab" in parts:
                bench_first_and_edits(work, args, url, token, hk_port, rsync_port)
            if "c" in parts:
                bench_latency(work, args, url, token)
            if "d" in parts:
                bench_rescan(work, args, url, token, rsync_port)
            if "huge" in parts:
                bench_huge(work, args, rsync_port)
            if "upgrade" in parts:
                bench_upgrade(work, args, rsync_port)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
