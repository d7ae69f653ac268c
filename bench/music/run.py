"""Benchmark the music scanner against a plain mutagen loop and os.scandir + stat.

    .venv/bin/python bench/music/run.py [--tracks 10000] [--files 100000]

Builds a library of --tracks files by copying a few small tagged clips (five formats,
varied tags, some with embedded covers), then times on the same files:
a cold scan (parallel and batched, as shipped; and one process with one commit per
row, the "before"), a plain single-process ``mutagen.File`` loop, an unchanged rescan,
and ``os.scandir`` + ``stat`` over the tree, the floor for any rescan. Each measure is
the best of --repeat runs. The --files
variant (hard links to the same clips) times the unchanged rescan of a bigger tree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.music import media

from homekeep.core.db import Database
from homekeep.music.config import MusicConfig
from homekeep.music.scanner import ScanResult
from homekeep.music.service import Service
from homekeep.music.store import MIGRATIONS

FORMATS = ("mp3", "flac", "vorbis", "opus", "aac")
TRACKS_PER_ALBUM = 10


def build(folder: Path, count: int, *, link: bool) -> list[Path]:
    """Make ``count`` tracks under ``folder``: 10 per album folder, 50 templates copied."""
    templates_dir = folder.parent / f"{folder.name}-templates"
    clips = media.make_clips(templates_dir / "clips", seconds=0.5)
    cover = media.image_bytes(600, 600)
    templates = []
    for n in range(50):
        fmt = FORMATS[n % len(FORMATS)]
        templates.append(
            media.write_track(
                clips[fmt],
                fmt,
                templates_dir / f"t{n}.{media.extension(fmt)}",
                {
                    "title": f"Song {n}",
                    "artist": f"Artist {n % 7}",
                    "album": f"Album {n % 11}",
                    "track": n % TRACKS_PER_ALBUM + 1,
                    "date": str(1970 + n),
                    "genre": "Rock",
                },
                ((3, cover),) if n % 3 == 0 else (),
            )
        )
    paths = []
    copy: Callable[[Path, Path], object] = os.link if link else shutil.copyfile
    for i in range(count):
        template = templates[i % len(templates)]
        album = folder / f"Artist {i // 1000:03d}" / f"Album {i // TRACKS_PER_ALBUM:05d}"
        if i % TRACKS_PER_ALBUM == 0:
            album.mkdir(parents=True, exist_ok=True)
        target = album / f"{i % TRACKS_PER_ALBUM:02d}{template.suffix}"
        copy(template, target)
        paths.append(target)
    return paths


def plain_loop(paths: list[Path]) -> float:
    """The reference: one process, mutagen.File on every path, touching the tags."""
    import mutagen

    start = time.perf_counter()
    for path in paths:
        audio = mutagen.File(path)
        if audio is not None and audio.tags is not None:
            list(audio.tags.keys())
    return time.perf_counter() - start


def scandir_stat(root: Path) -> float:
    """The floor of a rescan: os.scandir over the tree and one stat per file."""
    start = time.perf_counter()
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat()
    return time.perf_counter() - start


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def cpu_scaling(workers: int) -> float:
    """How much faster ``workers`` processes burn CPU than one: what this machine gives."""
    from concurrent.futures import ProcessPoolExecutor

    n = 3_000_000
    start = time.perf_counter()
    for _ in range(workers):
        _burn(n)
    serial = time.perf_counter() - start
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_burn, [1] * workers))
        start = time.perf_counter()
        list(pool.map(_burn, [n] * workers))
        parallel = time.perf_counter() - start
    return serial / parallel


def scan(data: Path, root: Path, **config: int) -> tuple[float, ScanResult]:
    data.mkdir(parents=True, exist_ok=True)
    db = Database(data / "music.sqlite", area="music", migrations=MIGRATIONS)
    try:
        start = time.perf_counter()
        result = Service(MusicConfig.model_validate(config), data, db).scanner().scan([root])
        return time.perf_counter() - start, result
    finally:
        db.close()


def steps(result: ScanResult) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="Runs per measure; the best counts.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="music-bench-") as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        paths = build(base / "lib", args.tracks, link=False)
        print(f"built {len(paths)} tracks in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        n = len(paths)
        # The machine is shared and noisy: every measure is the best of --repeat runs,
        # taken in turns so that a busy moment hits all of them alike.
        plain = before = batched = cold = float("inf")
        scaling = 0.0
        for rep in range(args.repeat):
            scaling = max(scaling, cpu_scaling(args.workers))
            plain = min(plain, plain_loop(paths))
            t, before_result = scan(base / f"d-before{rep}", base / "lib", workers=1, batch_size=1)
            before = min(before, t)
            t, batched_result = scan(base / f"d-batched{rep}", base / "lib", workers=1)
            batched = min(batched, t)
            t, cold_result = scan(base / f"d-after{rep}", base / "lib", workers=args.workers)
            cold = min(cold, t)
        rescan = floor = float("inf")
        for _ in range(args.repeat):
            t, rescan_result = scan(base / "d-after0", base / "lib", workers=args.workers)
            rescan = min(rescan, t)
            assert rescan_result.counts["tags_read"] == 0
            floor = min(floor, scandir_stat(base / "lib"))

        t0 = time.perf_counter()
        build(base / "big", args.files, link=True)
        print(f"built {args.files} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        big_cold, _ = scan(base / "d-big", base / "big", workers=args.workers)
        big_rescan = big_floor = float("inf")
        for _ in range(args.repeat):
            t, big_result = scan(base / "d-big", base / "big", workers=args.workers)
            big_rescan = min(big_rescan, t)
            assert big_result.counts["unchanged"] == args.files
            big_floor = min(big_floor, scandir_stat(base / "big"))

    rows = [
        ("cold scan, tracks/s", f"homekeep {args.workers} workers, batched", n / cold,
         "plain mutagen loop", n / plain, (n / cold) / (n / plain)),
        ("cold scan, tracks/s", "homekeep 1 process, batched", n / batched,
         "plain mutagen loop", n / plain, (n / batched) / (n / plain)),
        ("cold scan, tracks/s", "homekeep 1 process, commit per row (before)", n / before,
         "plain mutagen loop", n / plain, (n / before) / (n / plain)),
        (f"unchanged rescan {n} files, s", "homekeep", rescan,
         "os.scandir + stat", floor, rescan / floor),
        (f"unchanged rescan {args.files} files, s", "homekeep", big_rescan,
         "os.scandir + stat", big_floor, big_rescan / big_floor),
    ]  # fmt: skip
    print("| measure | homekeep | value | reference | value | ratio |")
    print("|---|---|---:|---|---:|---:|")
    for measure, ours, value, ref, ref_value, ratio in rows:
        print(f"| {measure} | {ours} | {value:,.2f} | {ref} | {ref_value:,.2f} | {ratio:.2f}x |")
    print()
    print(f"steps, cold scan {args.workers} workers (s): {steps(cold_result)}")
    print(f"steps, cold scan 1 process batched (s): {steps(batched_result)}")
    print(f"steps, cold scan commit per row (s): {steps(before_result)}")
    print(f"steps, unchanged rescan {n} (s): {steps(rescan_result)}")
    print(f"steps, unchanged rescan {args.files} (s): {steps(big_result)}")
    print(f"cold scan of the {args.files}-file tree took {big_cold:.1f} s")
    print(f"CPU scaling of this machine, {args.workers} processes vs 1: {scaling:.2f}x")


if __name__ == "__main__":
    main()
