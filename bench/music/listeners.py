"""Benchmark 20 listeners at once: the server's CPU per stream, as they are and transcoded.

    .venv/bin/python bench/music/listeners.py [--listeners 20] [--seconds 20]

A real `homekeep serve` on loopback over a 4-minute FLAC and the same tone as WavPack
(made by ffmpeg). Each listener is a thread that asks for a stream and reads it at the
pace it plays (the FLAC at its own bit rate, the Opus at 128 kbit/s, after the first 5 s
at once, as a player fills its buffer), so ffmpeg runs only as fast as it is listened
to. Three rounds of --seconds each: every listener on the FLAC as it is; every listener
on the WavPack transcoded to Opus; half and half. The CPU time is that of the server
process and of its ffmpeg children (user + system, from /proc, the children counted once
reaped), per stream and per second of listening. The reference is bare ffmpeg, the same
arguments, as many processes, read at the same pace from their pipes.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.music.stream import fill_audio
from tests.support import create_token, run_cli, serve

from homekeep.music.streaming import Plan, ffmpeg_args

OPUS_RATE = 128_000 // 8  # bytes per second of 128 kbit/s Opus
BUFFER_S = 5.0  # what a player reads ahead at once
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and of its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS


def paced(read: socket.socket | subprocess.Popen[bytes], rate: float, until: float) -> int:
    """Read a stream at ``rate`` bytes/s (BUFFER_S of it at once) until ``until``."""
    start, got = time.monotonic(), 0
    while time.monotonic() < until:
        allowed = rate * (BUFFER_S + time.monotonic() - start) - got
        if allowed < 4096:
            time.sleep(0.05)
            continue
        want = int(min(allowed, 65536))
        if isinstance(read, socket.socket):
            chunk = read.recv(want)
        else:
            assert read.stdout is not None
            chunk = read.stdout.read1(want)  # type: ignore[attr-defined]
        if not chunk:
            break
        got += len(chunk)
    return got


def listen(port: int, path: str, token: str, rate: float, until: float, out: list[int]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}"
                     "\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
        out.append(paced(sock, rate, until))


def bare(wv: Path, until: float, out: list[int]) -> None:
    proc = subprocess.Popen(ffmpeg_args("ffmpeg", wv, Plan("opus", 128)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        out.append(paced(proc, OPUS_RATE, until))
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def round_of(targets: list[tuple[str, float]], port: int, token: str, seconds: float) -> list[int]:
    """Run one listener per (path, rate) for ``seconds``; return the bytes each read."""
    until = time.monotonic() + seconds
    out: list[int] = []
    threads = [
        threading.Thread(target=listen, args=(port, path, token, rate, until, out))
        for path, rate in targets
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listeners", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    n, secs = args.listeners, args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, data = base / "music", base / "data"
        flac, wv = fill_audio(root)
        flac_rate = flac.stat().st_size / 240
        assert run_cli("music", "scan", root, data_dir=data).returncode == 0
        token = create_token(data, "bench", "music")
        rows = []
        env = {"HOMEKEEP_MUSIC_MAX_TRANSCODES": str(n)}
        with serve(data, env=env) as srv:
            port, pid = int(srv.url.rsplit(":", 1)[1]), srv.process.pid
            with srv.client(token) as c:
                ids = {t["format"]: t["id"] for t in c.get("/api/music/tracks").json()["items"]}
            direct = (f"/api/music/tracks/{ids['flac']}/stream", flac_rate)
            opus = (f"/api/music/tracks/{ids['wavpack']}/stream?format=opus", float(OPUS_RATE))
            for name, targets in (
                (f"{n} x FLAC as it is", [direct] * n),
                (f"{n} x WavPack to Opus", [opus] * n),
                (f"{n // 2} as they are + {n - n // 2} transcoded",
                 [direct] * (n // 2) + [opus] * (n - n // 2)),
            ):  # fmt: skip
                before = cpu_seconds(pid)
                read = round_of(targets, port, token, secs)
                time.sleep(1.0)  # the server reaps its ffmpeg children: their time counts
                used = cpu_seconds(pid) - before
                rows.append((name, used, len(read), sum(read)))
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        got: list[int] = []
        until = time.monotonic() + secs
        threads = [threading.Thread(target=bare, args=(wv, until, got)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(secs + 30)
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after_children.ru_utime - before_children.ru_utime) + (
            after_children.ru_stime - before_children.ru_stime
        )
        rows.append((f"reference: {n} x bare ffmpeg, WavPack to Opus", used, len(got), sum(got)))
    opus_ref = rows[-1][1] / max(1, rows[-1][2])
    print(f"{n} listeners for {secs:.0f} s each round, read at the pace they play")
    print()
    print("| round | streams | CPU s | CPU ms per stream-second | % of a core per stream |"
          " MB read | vs bare ffmpeg |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, used, streams, size in rows:
        per = used / max(1, streams)
        ratio = f"{per / opus_ref:.2f}x" if "Opus" in name and "reference" not in name else ""
        print(
            f"| {name} | {streams} | {used:.2f} | {per / secs * 1000:.1f} |"
            f" {per / secs * 100:.2f} | {size / 1e6:.1f} | {ratio} |"
        )
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"\nload: {load.strip()}")


if __name__ == "__main__":
    main()
