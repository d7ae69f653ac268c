"""Benchmark streaming: time to the first audio byte, and getAlbumList2 on a large library.

    .venv/bin/python bench/music/stream.py [--repeat 20] [--albums 10000]

Starts a real `homekeep serve` on loopback over a library of two 4-minute tracks made by
ffmpeg (FLAC and WavPack), then times, turn by turn, the first byte of: the FLAC as it is
(/api/music/tracks/<id>/stream), the WavPack transcoded to Opus, and bare ffmpeg
started on the same WavPack with the same arguments (the reference: what the transcode
cannot beat). Then fills a second library's database with --albums albums of 10 tracks
(rows only: every track points at the one FLAC) and times getAlbumList2 (size 50) over
its types and pages, and the album grid's /api/music/albums. Prints p50 and p95 and the
ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.music import player
from tests.support import add_user, create_token, run_cli, serve

from homekeep.core.db import Database, utcnow
from homekeep.music.config import MusicConfig
from homekeep.music.store import MIGRATIONS, MusicStore
from homekeep.music.streaming import Plan, ffmpeg_args

PASSWORD = "bench-pass-123"  # noqa: S105 (a throwaway user of a temporary server)


def first_byte(port: int, path: str, token: str) -> float:
    """Seconds from connecting to the first byte of the response body."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}"
                     "\r\n\r\n".encode())  # fmt: skip
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"no answer for {path}")
            head += chunk
        if not head.split(b"\r\n\r\n", 1)[1]:
            sock.recv(1)
        return time.perf_counter() - start


def bare_ffmpeg(path: Path) -> float:
    """Seconds from starting ffmpeg to its first byte of Opus, then stop it."""
    start = time.perf_counter()
    proc = subprocess.Popen(ffmpeg_args("ffmpeg", path, Plan("opus", 128)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.read(1)
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait()
    proc.stdout.close()
    return elapsed


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def row(name: str, values: list[float], ref: list[float] | None = None) -> str:
    p50, p95 = pct(values, 0.5) * 1000, pct(values, 0.95) * 1000
    ratio = f"{p50 / (pct(ref, 0.5) * 1000):.2f}x" if ref else ""
    return f"| {name} | {p50:.1f} | {p95:.1f} | {ratio} |"


def fill_audio(root: Path) -> tuple[Path, Path]:
    """A 4-minute FLAC tone and the same as WavPack, made by ffmpeg under ``root``."""
    flac = player.long_track(root / "A" / "B" / "01.flac", 240)
    wv = root / "A" / "B" / "02.wv"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(flac),
                    "-c:a", "wavpack", str(wv)], check=True, timeout=120)  # fmt: skip
    return flac, wv


def fill(data: Path, flac: Path, albums: int) -> None:
    """A library database of ``albums`` albums x 10 tracks, all pointing at one real file."""
    db = Database(data / "music" / "music.sqlite", area="music", migrations=MIGRATIONS)
    root = str(flac.parent)
    now = utcnow()
    with db.transaction() as conn:
        conn.execute("INSERT INTO roots (id, path, added_at) VALUES (1, ?, ?)", (root, now))
        files, tracks = [], []
        for n in range(albums * 10):
            album, artist = n // 10, n // 100
            album_id = hashlib.sha256(f"al{album}".encode()).hexdigest()[:16]
            artist_id = hashlib.sha256(f"ar{artist}".encode()).hexdigest()[:16]
            files.append((n + 1, f"{album}/{n}.flac", str(album), "flac", "audio", "flac", 1, 0, 0,
                          n, now, now))  # fmt: skip
            tracks.append((n + 1, f"Track {n}", f"Artist {artist}", f"Album {album}",
                           f"Artist {artist}", n % 10 + 1, 1990 + album % 30, "Rock", 240.0,
                           900_000, artist_id, artist_id, album_id))  # fmt: skip
        conn.executemany(
            "INSERT INTO files (id, root_id, path, dir, ext, kind, detected, size, mtime_ns,"
            " ctime_ns, inode, read_at, added_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            files,
        )
        conn.executemany(
            "INSERT INTO tracks (file_id, title, artist, album, album_artist, track, year, genre,"
            " duration, bitrate, artist_id, album_artist_id, album_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tracks,
        )
        conn.executemany(
            "INSERT INTO track_artists (file_id, position, artist_id, name) VALUES (?, 0, ?, ?)",
            [(t[0], t[10], t[2]) for t in tracks],
        )
        conn.executemany("INSERT INTO track_genres (file_id, position, genre) VALUES (?, 0, ?)",
                         [(t[0], "Rock") for t in tracks])  # fmt: skip
        MusicStore(db, data / "music").rebuild_catalog(MusicConfig().cover_priority)
    db.close()


def album_lists(url: str, token: str, repeat: int, albums: int) -> list[str]:
    import httpx

    types = ["newest", "alphabeticalByName", "alphabeticalByArtist", "random", "frequent",
             "recent", "starred", "highest"]  # fmt: skip
    rest, grid = [], []
    params = {"u": "bench", "p": PASSWORD, "f": "json", "v": "1.16.1", "c": "bench"}
    with httpx.Client(base_url=url, timeout=60) as c:
        for n in range(repeat):
            for kind in types:
                offset = random.randrange(0, albums - 50)
                start = time.perf_counter()
                answer = c.get("/rest/getAlbumList2", params={**params, "type": kind,
                               "size": 50, "offset": offset})  # fmt: skip
                rest.append(time.perf_counter() - start)
                assert answer.json()["subsonic-response"]["status"] == "ok"
            start = time.perf_counter()
            c.get("/api/music/albums", params={"limit": 100, "offset": n * 100, "sort": "year"},
                  headers={"Authorization": f"Bearer {token}"}).raise_for_status()  # fmt: skip
            grid.append(time.perf_counter() - start)
    return [
        row(f"getAlbumList2 size 50, {albums} albums ({len(rest)} calls)", rest),
        row(f"/api/music/albums limit 100, {albums} albums", grid),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--albums", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, data = base / "music", base / "data"
        flac, wv = fill_audio(root)
        assert run_cli("music", "scan", root, data_dir=data).returncode == 0
        token = create_token(data, "bench", "music")
        with serve(data) as srv:
            port = int(srv.url.rsplit(":", 1)[1])
            with srv.client(token) as c:
                ids = {t["format"]: t["id"] for t in c.get("/api/music/tracks").json()["items"]}
            direct, transcoded, bare = [], [], []
            for _ in range(args.repeat):
                direct.append(first_byte(port, f"/api/music/tracks/{ids['flac']}/stream", token))
                transcoded.append(
                    first_byte(
                        port, f"/api/music/tracks/{ids['wavpack']}/stream?format=opus", token
                    )
                )
                bare.append(bare_ffmpeg(wv))
        print("| first audio byte | p50 ms | p95 ms | vs bare ffmpeg (p50) |")
        print("|---|---:|---:|---:|")
        print(row("bare ffmpeg, WavPack to Opus (reference)", bare))
        print(row("homekeep, FLAC as it is (Range-capable)", direct, bare))
        print(row("homekeep, WavPack transcoded to Opus", transcoded, bare))
        big = base / "big"
        fill(big, flac, args.albums)
        add_user(big, "bench", "bench-login-123", "music")
        assert run_cli("music", "subsonic-password", "bench", "--password-stdin",
                       data_dir=big, input=PASSWORD + "\n").returncode == 0  # fmt: skip
        token = create_token(big, "bench", "music")
        with serve(big) as srv:
            print()
            print("| API call | p50 ms | p95 ms | |")
            print("|---|---:|---:|---:|")
            for line in album_lists(srv.url, token, max(5, args.repeat // 2), args.albums):
                print(line)
        print(f"\n({args.repeat} turns of the first-byte measures, taken in turns)")


if __name__ == "__main__":
    main()
