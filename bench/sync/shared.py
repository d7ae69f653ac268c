"""Benchmark shared folders (`sync watch/pull/push --folder`) against rsync, in one run.

    python bench/sync/shared.py                                   # both parts, 1 GiB
    python bench/sync/shared.py --only latency --edits 30
    python bench/sync/shared.py --only receive --gib 0.25         # quick
    python bench/sync/shared.py --profile /tmp/prof               # py-spy of every party

(latency) a real server and two `sync watch DIR --folder live` clients on loopback: an
    edit on client A is timed until client B holds it (p50, p95, max against the 1 s
    target); an edit in the server's copy is timed until both clients hold it. The
    reference, per edit of the same file: `rsync -a` to an rsync daemon and back out to a
    second folder, what a cron or inotify script runs (its wait for the trigger aside).
(receive) client A fills a shared folder with about --gib GiB: real source trees (sdists
    fetched by pip, as run.py's upgrade part) and large generated files. Fresh clients
    take it all with `sync pull --folder` and with a two-way `sync push --folder`, then a
    client that already holds most of it under another layout pulls. Wall time and bytes
    both ways (TCP proxies) against `rsync -a` and `-az` from a daemon module of the
    server's copy, into the same starting folders.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.sync.run import (
    HOMEKEEP,
    SDIST_CACHE,
    CountingProxy,
    MiB,
    env,
    human,
    insert_middle,
    release,
    rsync_daemon,
    rsync_wire,
    run,
    same_bytes,
    settled,
    sync_server,
    table,
    write_huge,
)

OWN = frozenset({".homekeep-folder", ".homekeep-versions", ".homekeep-tmp"})
RSYNC_SKIP = [f"--exclude=/{name}" for name in sorted(OWN)]
SOURCES = ["django:5.1", "sqlalchemy:2.0.31", "sympy:1.13.0", "requests:2.32.3"]
ELSEWHERE = "elsewhere"  # where client C holds its copy under another layout
# rsync sends editor backups (Django's sdist has a "backup~"): so do our clients, here
CLIENT_ENV = {"HOMEKEEP_SYNC_DEFAULT_EXCLUDES": "0"}
LIMIT = 15.0  # seconds an edit may take before it counts as lost (and the logs are shown)


def quantiles(delays: list[float]) -> tuple[float, float, float]:
    """p50, p95, max."""
    q = statistics.quantiles(delays, n=20, method="inclusive") if len(delays) > 1 else delays * 19
    return statistics.median(delays), q[18], max(delays)


def share(work: Path, suffix: str, name: str) -> Path:
    """`homekeep sync share NAME SERVER_DIR` on the server of ``suffix``; its folder."""
    root = work / f"hk-dst{suffix}"
    data = work / f"hk-server-data{suffix}"
    run([*HOMEKEEP, "--data-dir", str(data), "sync", "share", name, str(root)])
    return root / name


def client_cmd(work: Path, verb: str, folder: Path, url: str, token: str, name: str) -> list[str]:
    """`homekeep sync VERB FOLDER --folder` as client ``name`` (its own data dir)."""
    return [
        *HOMEKEEP,
        "--data-dir",
        str(work / f"hk-client-{name}"),
        *(["-v"] if verb == "watch" else []),  # its log tells where a lost edit went
        "sync",
        verb,
        str(folder),
        *("--server", url, "--token", token, "--name", name, "--folder", folder.name),
    ]


def spy_record(out: Path) -> list[str]:
    """`py-spy record` into ``out`` as collapsed stacks (the venv's py-spy first)."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return [spy, "record", "--rate", "200", "--format", "raw", "-o", str(out)]


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """Sample process ``pid`` with py-spy into ``out`` (collapsed stacks) while the block runs."""
    if out is None:
        yield
        return
    proc = subprocess.Popen(
        [*spy_record(out), "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)  # attached
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        proc.wait(timeout=60)


@contextmanager
def watching(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `sync watch` until the block ends, then stop it with SIGTERM."""
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env(**CLIENT_ENV))
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def holds(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except OSError:
        return False


def time_until(paths: list[Path], text: str, limit: float) -> list[float]:
    """Seconds until each of ``paths`` holds ``text`` (``limit`` for one that never does)."""
    start = time.monotonic()
    seen: dict[Path, float] = {}
    while len(seen) < len(paths) and time.monotonic() - start < limit:
        for path in paths:
            if path not in seen and holds(path, text):
                seen[path] = time.monotonic() - start
        time.sleep(0.002)
    return [seen.get(p, limit) for p in paths]


def timed(cmd: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env())
    return time.monotonic() - start


def bench_latency(work: Path, args: argparse.Namespace) -> None:
    """Client to client and server to client latency while both clients watch."""
    a, b = work / "lat-a" / "live", work / "lat-b" / "live"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (a / "note.txt").write_text("start")
    prof = args.profile
    with sync_server(work, "-lat") as (url, token, _, server_pid):
        on_server = share(work, "-lat", "live")
        with ExitStack() as stack:
            wa = stack.enter_context(
                watching(client_cmd(work, "watch", a, url, token, "a"), work / "watch-a.log")
            )
            wb = stack.enter_context(
                watching(client_cmd(work, "watch", b, url, token, "b"), work / "watch-b.log")
            )
            if time_until([b / "note.txt"], "start", 60)[0] >= 60:
                raise SystemExit(f"client b never got the first file: {work / 'watch-b.log'}")
            time.sleep(args.gap)
            for pid, name in ((wa.pid, "watch-a"), (wb.pid, "watch-b"), (server_pid, "server")):
                stack.enter_context(profiled(pid, prof / f"latency-{name}.txt" if prof else None))
            client: list[float] = []
            for i in range(args.edits):
                text = f"edit {i} made on client a\n" * 10
                (a / "note.txt").write_text(text)
                client += time_until([b / "note.txt"], text, LIMIT)
                if client[-1] >= LIMIT:
                    lost(work, i, b / "note.txt")
                    if wa.poll() is not None or wb.poll() is not None:
                        print(f"  a watch exited (a: {wa.poll()}, b: {wb.poll()}): edits stop")
                        break
                time.sleep(args.gap)
            first: list[float] = []
            both: list[float] = []
            for i in range(args.edits if wa.poll() is None and wb.poll() is None else 0):
                text = f"edit {i} made in the server's folder\n" * 10
                (on_server / "server.txt").write_text(text)
                got = time_until([a / "server.txt", b / "server.txt"], text, LIMIT)
                first.append(min(got))
                both.append(max(got))
                time.sleep(args.gap)
    push, round_trip = rsync_latency(work, args)
    rows = []
    for label, delays in [  # an edit that never arrived counts as LIMIT seconds
        ("homekeep: edit on client A until client B holds it", client),
        ("homekeep: edit in the server's folder until the first client holds it", first),
        ("homekeep: edit in the server's folder until both clients hold it", both),
        ("rsync -a: the file to a daemon (one client to the server)", push),
        ("rsync -a: to a daemon, then out to a second folder (client to client)", round_trip),
    ]:
        if not delays:
            rows.append([label, "-", "-", "-"])
            continue
        p50, p95, top = quantiles(delays)
        verdict = "" if not label.startswith("homekeep") else (" (met)" if p50 < 1 else " (MISSED)")
        rows.append([label, f"{p50:.3f} s{verdict}", f"{p95:.3f} s", f"{top:.3f} s"])
    table(
        f"(latency) {len(client)} edits of a small file, {args.gap:g} s apart; target p50 < 1 s "
        "(Syncthing waits 10 s by default); rsync timed per edit without its trigger's wait; "
        f"{sum(d >= LIMIT for d in client)} edits never arrived (counted as {LIMIT:g} s)",
        ["path of the edit", "p50", "p95", "max"],
        rows,
    )


def lost(work: Path, edit: int, where: Path) -> None:
    """Say that an edit never arrived, with what both clients logged last."""
    held = where.read_text()[:40] if where.exists() else None
    print(f"  edit {edit} did not reach {where} in {LIMIT:g} s; it holds {held!r}...")
    for name in ("a", "b"):
        kept = work.parent / f"{work.name}-watch-{name}.log"  # outlives the work dir
        shutil.copy(work / f"watch-{name}.log", kept)
        tail = kept.read_text().splitlines()[-15:]
        print(f"  {kept}, last lines:\n    " + "\n    ".join(tail), flush=True)


def rsync_latency(work: Path, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Per edit: `rsync -a` of the file into a daemon module, and back out to another folder."""
    a, b, module = work / "rs-lat-a", work / "rs-lat-b", work / "rs-lat-server"
    for folder in (a, b, module):
        folder.mkdir()
    push: list[float] = []
    both: list[float] = []
    with rsync_daemon(work, {"live": module}) as port:
        url = f"rsync://127.0.0.1:{port}/live/"
        for i in range(args.edits):
            (a / "note.txt").write_text(f"edit {i} made on client a\n" * 10)
            up = timed(["rsync", "-a", str(a / "note.txt"), url])
            down = timed(["rsync", "-a", f"{url}note.txt", f"{b}/"])
            push.append(up)
            both.append(up + down)
            time.sleep(0.05)
    return push, both


# -- receive -------------------------------------------------------------------------------


def fill(folder: Path, work: Path, args: argparse.Namespace) -> tuple[int, int]:
    """Real source trees, then generated files of --big-mb up to --gib; (files, bytes)."""
    for spec in args.source or SOURCES:
        name, version = spec.split(":")
        tree = release(name, version, args.sdist_cache, work)
        shutil.copytree(tree, folder / "src" / tree.name, symlinks=True)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    want = int(args.gib * (1 << 30))
    media = folder / "media"
    media.mkdir()
    seed = 1
    while total < want:
        size = min(args.big_mb * MiB, want - total)
        write_huge(media / f"video{seed:02d}.bin", size, seed)
        total += size
        seed += 1
    return sum(1 for p in folder.rglob("*") if p.is_file()), total


def other_layout(src: Path, dest: Path) -> int:
    """Most of ``src`` under other names in ``dest``: folders flattened, every tenth source
    file and the last generated file left out, one generated file edited in the middle.
    Returns the bytes left out."""
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    media = [p for p in files if p.parent.name == "media"]
    left_out = [media[-1], *(p for i, p in enumerate(files) if p not in media and i % 10 == 0)]
    for path in files:
        if path in left_out:
            continue
        rel = path.relative_to(src)
        out = dest / ELSEWHERE / "__".join(rel.parts[:-1]) / rel.name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out)
        if path == media[0]:
            insert_middle(out, b"an edit in the middle of this copy")
    return sum(p.stat().st_size for p in left_out)


def hk_pass(
    work: Path, verb: str, folder: Path, url: str, token: str, name: str, prof: Path | None
) -> tuple[float, dict[str, Any]]:
    """A timed `sync pull|push FOLDER --folder --json` (under py-spy into ``prof``)."""
    cmd = [*client_cmd(work, verb, folder, url, token, name), "--json"]
    if prof is not None:
        out = prof / f"receive-{name}-client.txt"
        cmd = [*spy_record(out), "--", *cmd]
    seconds, _, printed = settled(partial(run, cmd, **CLIENT_ENV))
    # py-spy says what it does on stdout too, before and after the command's one write
    lines = [line for line in printed.splitlines() if not line.startswith("py-spy>")]
    answer: dict[str, Any] = json.loads("\n".join(lines))
    return seconds, answer


def rsync_pull(port: int, dest: Path, flags: list[str]) -> tuple[float, int]:
    """`rsync FLAGS --stats` of the whole module into ``dest``: seconds, bytes (its stats)."""
    cmd = ["rsync", *flags, "--stats", *RSYNC_SKIP, f"rsync://127.0.0.1:{port}/big/", f"{dest}/"]
    seconds, _, stats = settled(partial(run, cmd))
    return seconds, rsync_wire(stats)


Row = tuple[list[str], float, int]  # a table row, its seconds, its bytes both ways


def bench_receive(work: Path, args: argparse.Namespace) -> None:
    """A new client taking a whole shared folder, and one holding most of it already."""
    a = work / "recv-a" / "big"
    a.mkdir(parents=True)
    start = time.monotonic()
    files, size = fill(a, work, args)
    print(f"  filled {a}: {files} files, {human(size)} in {time.monotonic() - start:.1f} s")
    with sync_server(work, "-recv") as (url, token, port, server_pid):
        on_server = share(work, "-recv", "big")
        seconds, _ = hk_pass(work, "push", a, url, token, "a", None)
        print(f"  client a sent it with `sync push --folder` in {seconds:.1f} s", flush=True)
        assert same_bytes(a, on_server, OWN), "the server's copy differs from a"
        hk_proxy = CountingProxy(port)
        hk_url = f"http://127.0.0.1:{hk_proxy.port}"
        with rsync_daemon(work, {"big": on_server}) as rsync_port:
            rs_proxy = CountingProxy(rsync_port)

            def theirs(dest: Path, flags: list[str]) -> Row:
                rs_proxy.take()
                seconds, stats = rsync_pull(rs_proxy.port, dest, flags)
                wire = rs_proxy.take()
                assert same_bytes(a, dest, OWN | {ELSEWHERE}), f"rsync {flags} differs"
                row = [f"rsync {' '.join(flags)}", f"{seconds:.2f}", human(wire), human(stats), "-"]
                return row, seconds, wire

            def ours(verb: str, folder: Path, name: str) -> Row:
                hk_proxy.take()
                prof = args.profile / f"receive-{name}-server.txt" if args.profile else None
                with profiled(server_pid, prof):
                    seconds, got = hk_pass(work, verb, folder, hk_url, token, name, args.profile)
                wire = hk_proxy.take()
                assert same_bytes(a, folder, OWN | {ELSEWHERE}), f"{name} differs from a"
                fetched = human(got["received"]["bytes_fetched"])
                reused = human(got["received"]["bytes_reused"])
                label = f"homekeep sync {verb} --folder"
                return [label, f"{seconds:.2f}", human(wire), fetched, reused], seconds, wire

            fresh: list[Row] = []
            for flags in (["-a"], ["-az"]):
                (work / "rs-new").mkdir()
                fresh.append(theirs(work / "rs-new", flags))
                shutil.rmtree(work / "rs-new")
            for verb, name in (("pull", "b"), ("push", "b2")):
                folder = work / f"recv-{name}" / "big"
                folder.mkdir(parents=True)
                fresh.append(ours(verb, folder, name))
                shutil.rmtree(folder)
            compare(
                f"(receive) a new client takes a shared folder of {files} files, {human(size)} "
                f"(sources of {', '.join(args.source or SOURCES)} and generated files)",
                fresh,
            )
            c = work / "recv-c" / "big"
            c.mkdir(parents=True)
            missing = other_layout(a, c)
            reuse: list[Row] = []
            for flags in (["-a"], ["-az"]):
                shutil.copytree(c, work / "rs-c", symlinks=True)
                reuse.append(theirs(work / "rs-c", flags))
                shutil.rmtree(work / "rs-c")
            reuse.append(ours("pull", c, "c"))
            compare(
                f"(reuse) client C holds the tree under other folder names before it joins, "
                f"less {human(missing)} (every tenth source file, one generated file), one "
                "generated file edited in the middle; it pulls the folder",
                reuse,
            )


def compare(title: str, rows: list[Row]) -> None:
    """The rows, then ours against each rsync: time and bytes both ways."""
    table(
        title,
        ["tool", "seconds", "bytes both ways (proxy)", "bytes (own count)", "reused locally"],
        [row for row, _, _ in rows],
    )
    theirs = [(r[0], s, w) for r, s, w in rows if r[0].startswith("rsync")]
    ours = [(r[0], s, w) for r, s, w in rows if not r[0].startswith("rsync")]
    table(
        "ratios",
        ["ours / theirs", "time", "bytes both ways"],
        [
            [f"{o} / {t}", f"{o_s / t_s:.2f}", f"{o_w / max(t_w, 1):.3f}"]
            for o, o_s, o_w in ours
            for t, t_s, t_w in theirs
        ],
    )


# -- profiles ------------------------------------------------------------------------------


# where py-spy finds a thread that is waiting, not working (it counts them unless told --gil,
# which would hide the work done with the GIL released: hashing, compression, file I/O)
IDLE = frozenset(
    {
        "Condition.wait",
        "_worker",
        "EpollSelector.select",
        "Runner.run",
        "InotifyFD._check_inotify_fd",
        "DataPort._accept",
        "Event.wait",
        "Thread._wait_for_tstate_lock",
    }
)


def summarize(raw: Path, top: int = 12) -> None:
    """Where the busy samples were: functions by self share, homekeep's by inclusive share."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[-1].split(" (")[0] in IDLE:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if "homekeep" in frame:
                inclusive[frame] += count
    print(f"\n{raw.name}: {total} busy samples (200 a second)")
    for title, counter in (("self", own), ("inclusive, homekeep", inclusive)):
        print(f"  {title}:")
        for frame, count in counter.most_common(top):
            print(f"    {100 * count / max(total, 1):5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["latency", "receive"], action="append")
    parser.add_argument("--edits", type=int, default=30, help="edits timed on each path")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two edits")
    parser.add_argument("--gib", type=float, default=1.0, help="size of the shared folder, GiB")
    parser.add_argument("--big-mb", type=int, default=128, help="size of a generated file, MiB")
    parser.add_argument(
        "--source",
        action="append",
        metavar="NAME:VERSION",
        help=f"an sdist in the folder, repeatable (default: {' '.join(SOURCES)})",
    )
    parser.add_argument(
        "--sdist-cache",
        type=Path,
        default=SDIST_CACHE,
        help="where pip saves the sdists (kept between runs)",
    )
    parser.add_argument("--profile", type=Path, help="sample every party with py-spy into DIR")
    parser.add_argument("--workdir", type=Path, help="where to build the trees (default: temp)")
    args = parser.parse_args()
    if shutil.which("rsync") is None:
        raise SystemExit("rsync not found on PATH: apt-get install rsync")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hk-bench-shared-", dir=args.workdir))
    parts = set(args.only or ["latency", "receive"])
    print(f"homekeep shared-folder benchmark; work dir {work}; {os.cpu_count()} CPUs", flush=True)
    try:
        if "latency" in parts:
            bench_latency(work, args)
        if "receive" in parts:
            bench_receive(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.profile:
        for raw in sorted(args.profile.glob("*.txt")):
            summarize(raw)


if __name__ == "__main__":
    main()
