"""Benchmark 20 listeners at once: the server's CPU per stream, as they are and transcoded.

    .venv/bin/python bench/music/listeners.py [--listeners 20] [--seconds 20]

A real `homekeep serve` on loopback over a 4-minute FLAC and the same tone as WavPack
(made by ffmpeg). Each listener is a thread that asks for a stream and reads it at the
pace it plays (the FLAC at its own bit rate, the Opus at 128 kbit/s, after the first 5 s
at once, as a player fills its buffer), so ffmpeg runs only as fast as it is listened
to. Three paced rounds of --seconds each: every listener on the FLAC as it is; every
listener on the WavPack transcoded to Opus; half and half. Then a flat-out round: every
listener reads the whole Opus transcode as fast as it comes. The CPU time is that of the
server process and of its ffmpeg children (user + system, from /proc, the children
counted once reaped), per stream. The reference is bare ffmpeg, the same arguments, as
many processes, read from their pipes at the same pace, then flat out.
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
    """Read a stream at ``rate`` bytes/s (BUFFER_S of it at once) until ``until``;
    a ``rate`` of 0 reads as fast as it comes, to the end."""
    start, got = time.monotonic(), 0
    while time.monotonic() < until:
        allowed = rate * (BUFFER_S + time.monotonic() - start) - got if rate else 65536
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


def bare(wv: Path, rate: float, until: float, out: list[int]) -> None:
    proc = subprocess.Popen(ffmpeg_args("ffmpeg", wv, Plan("opus", 128)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        out.append(paced(proc, rate, until))
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


def bare_round(wv: Path, n: int, rate: float, seconds: float) -> tuple[float, list[int]]:
    """``n`` bare ffmpeg transcodes read at ``rate``: their CPU seconds and bytes read."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    got: list[int] = []
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=bare, args=(wv, rate, until, got)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), got


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
            whole = (opus[0], 0.0)
            for name, targets, seconds in (
                (f"{n} x FLAC as it is, at the pace they play", [direct] * n, secs),
                (f"{n} x WavPack to Opus, at the pace they play", [opus] * n, secs),
                (f"{n // 2} as they are + {n - n // 2} transcoded, at the pace they play",
                 [direct] * (n // 2) + [opus] * (n - n // 2), secs),
                (f"{n} x WavPack to Opus, whole, flat out", [whole] * n, 600),
            ):  # fmt: skip
                before = cpu_seconds(pid)
                read = round_of(targets, port, token, seconds)
                time.sleep(1.0)  # the server reaps its ffmpeg children: their time counts
                used = cpu_seconds(pid) - before
                rows.append((name, used, len(read), sum(read)))
        for rate, how in ((float(OPUS_RATE), "at the pace they play"), (0.0, "whole, flat out")):
            used, read = bare_round(wv, n, rate, secs if rate else 600)
            rows.append((f"reference: {n} x bare ffmpeg, WavPack to Opus, {how}", used,
                         len(read), sum(read)))  # fmt: skip
    refs = {"pace": rows[-2][1] / max(1, rows[-2][2]), "flat": rows[-1][1] / max(1, rows[-1][2])}
    print(f"{n} listeners at once; a paced round lasts {secs:.0f} s, a flat-out one reads the"
          " whole 240 s track")  # fmt: skip
    print()
    print("| round | streams | CPU s | CPU s per stream | MB read | vs bare ffmpeg |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, used, streams, size in rows:
        per = used / max(1, streams)
        ref = refs["flat" if "flat out" in name else "pace"]
        ratio = f"{per / ref:.2f}x" if "Opus" in name and "reference" not in name else ""
        print(f"| {name} | {streams} | {used:.2f} | {per:.3f} | {size / 1e6:.1f} | {ratio} |")
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"\nload: {load.strip()}")


if __name__ == "__main__":
    main()
