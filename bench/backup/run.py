"""Benchmark: a homekeep backup run against the bare rsync command it wraps.

Same 50,000-file tree, same flags, three scenarios (first run, unchanged run, snapshot
run). Each scenario runs bare rsync, ``homekeep backup run`` as a user runs it (a new
process), and the run called in-process as the daemon does (no interpreter start), in
rotating order, and keeps the median. Usage: python bench/backup/run.py [--files 50000] [--repeat 6]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tomli_w

from homekeep.backup.config import BackupConfig
from homekeep.backup.retention import new_stamp, snapshots
from homekeep.backup.service import Service, open_service
from homekeep.core.area import AreaContext
from homekeep.core.config import CORE_SECTIONS, Section, load_settings

# What homekeep runs for a mirror (plus --delete) or a snapshot (plus --link-dest).
RSYNC_FLAGS = ["-a", "--stats", "--mkpath"]


def make_tree(root: Path, files: int) -> int:
    """Write ``files`` small files (0-8 KiB) in folders of 500; return the bytes written."""
    rng = random.Random(1)
    total = 0
    for i in range(files):
        folder = root / f"d{i // 500:03d}"
        if i % 500 == 0:
            folder.mkdir(parents=True)
        size = rng.randint(0, 8192)
        (folder / f"f{i:06d}.dat").write_bytes(rng.randbytes(size))
        total += size
    return total


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_order(round_: int, *fns: Callable[[], float]) -> tuple[float, float, float]:
    """Time the variants, each round in another order, each after a sync.

    The sync flushes what the previous variant wrote, so no variant pays for another's
    writeback; rotating the order shares out warm caches.
    """
    times = [0.0] * len(fns)
    for k in range(len(fns)):
        i = (k + round_) % len(fns)
        os.sync()
        times[i] = fns[i]()
    return times[0], times[1], times[2]


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Bench:
    def __init__(self, work: Path, files: int) -> None:
        self.work = work
        self.src = work / "src"
        self.size = make_tree(self.src, files)
        self.config = work / "config.toml"
        self.data = work / "data"
        self.config.write_text(
            tomli_w.dumps(
                {
                    "backup": {
                        "root": str(work / "hk"),
                        "jobs": [
                            {"name": "mirror", "source": str(self.src)},
                            {"name": "snap", "source": str(self.src), "method": "snapshot"},
                        ],
                    }
                }
            )
        )
        sections: dict[str, type[Section]] = {**CORE_SECTIONS, "backup": BackupConfig}
        settings = load_settings(self.config, sections, data_dir=self.data, env={})
        self.svc: Service = open_service(AreaContext(name="backup", settings=settings))
        self.cli = [
            sys.executable,
            "-m",
            "homekeep",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data),
            "backup",
            "run",
        ]

    def library(self, name: str) -> None:
        run_ = self.svc.backups.run(self.svc.jobs.get(name), trigger="bench")
        assert run_.result == "ok", run_.errors

    # -- scenarios: each returns (rsync, cli, library) timings ------------------------

    def bare_mirror(self) -> float:
        bare = self.work / "bare"
        return timed(lambda: run(["rsync", *RSYNC_FLAGS, "--delete", f"{self.src}/", f"{bare}/"]))

    def first(self, round_: int) -> tuple[float, float, float]:
        hk = self.work / "hk" / "mirror"

        def fresh(fn: Callable[[], float], dest: Path) -> Callable[[], float]:
            def go() -> float:
                shutil.rmtree(dest, ignore_errors=True)
                return fn()

            return go

        return in_order(
            round_,
            fresh(self.bare_mirror, self.work / "bare"),
            fresh(lambda: timed(lambda: run([*self.cli, "mirror"])), hk),
            fresh(lambda: timed(lambda: self.library("mirror")), hk),
        )

    def unchanged(self, round_: int) -> tuple[float, float, float]:
        return in_order(
            round_,
            self.bare_mirror,
            lambda: timed(lambda: run([*self.cli, "mirror"])),
            lambda: timed(lambda: self.library("mirror")),
        )

    def snapshot(self, round_: int) -> tuple[float, float, float]:
        bare_root = self.work / "bare-snap"
        bare_root.mkdir(exist_ok=True)
        hk_root = self.work / "hk" / "snap"
        if not snapshots(hk_root):
            self.library("snap")
        if not snapshots(bare_root):
            run(["rsync", *RSYNC_FLAGS, f"{self.src}/", f"{bare_root / new_stamp(bare_root)}/"])
        # One file changed per round, as a daily snapshot would see.
        touched = self.src / "d000" / "f000000.dat"
        touched.write_bytes(os.urandom(100))

        def bare() -> None:
            prev = bare_root / snapshots(bare_root)[-1]
            dest = bare_root / f"{new_stamp(bare_root)}.partial"
            run(["rsync", *RSYNC_FLAGS, f"--link-dest={prev}", f"{self.src}/", f"{dest}/"])
            dest.rename(dest.with_suffix(""))

        return in_order(
            round_,
            lambda: timed(bare),
            lambda: timed(lambda: run([*self.cli, "snap"])),
            lambda: timed(lambda: self.library("snap")),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hk-bench-") as tmp:
        print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        start = time.perf_counter()
        bench = Bench(Path(tmp), args.files)
        print(
            f"tree: {args.files} files, {bench.size / 2**20:.0f} MiB "
            f"(made in {time.perf_counter() - start:.1f}s); median of {args.repeat}"
        )
        print(
            f"{'scenario':<12}{'rsync s':>10}{'homekeep s':>12}{'ratio':>8}"
            f"{'in-process s':>14}{'ratio':>8}"
        )
        for name in ("first", "unchanged", "snapshot"):
            samples = [getattr(bench, name)(i) for i in range(args.repeat)]
            r, c, lib = (statistics.median(s[i] for s in samples) for i in range(3))
            print(f"{name:<12}{r:>10.3f}{c:>12.3f}{c / r:>8.2f}{lib:>14.3f}{lib / r:>8.2f}")
        # The fixed cost of a new process: Python, the CLI's imports, the config and the
        # database opened, then an unknown job refused (no rsync at all).
        python = statistics.median(
            timed(lambda: run([sys.executable, "-c", "pass"])) for _ in range(args.repeat)
        )
        startup = statistics.median(
            timed(lambda: subprocess.run([*bench.cli, "no-such-job"], capture_output=True))
            for _ in range(args.repeat)
        )
        print(f"start-up: python {python:.3f} s, homekeep backup run (no rsync) {startup:.3f} s")
        print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        bench.svc.close()


if __name__ == "__main__":
    main()
