"""A worker on "another machine": its own data directory, no access to the server's files,
jobs through a real redis-server, input and output over HTTP."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.convert.conftest import FAST, Hosted, start
from tests.support import HOMEKEEP, clean_env, free_port

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed (make setup)"
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server on a free loopback port, its files in a temp dir, no persistence."""
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_remote_worker_takes_jobs_through_redis(
    broker: str, tmp_path: Path, clips: dict[str, Path]
) -> None:
    env = {"HOMEKEEP_CONVERT_BROKER": broker, "HOMEKEEP_CONVERT_NUMBER_OF_CONVERSION_THREADS": "0"}
    for hosted in start(tmp_path / "server", env):
        elsewhere = tmp_path / "elsewhere"  # the other machine's data directory
        proc = subprocess.Popen(
            [
                *HOMEKEEP,
                "--data-dir",
                str(elsewhere),
                "convert",
                "worker",
                "--server",
                hosted.url,
                "--threads",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(
                {
                    **FAST,
                    "HOMEKEEP_CONVERT_BROKER": broker,
                    "HOMEKEEP_CONVERT_WORKER_TOKEN": hosted.worker_token,
                }
            ),
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "2 thread(s) taking jobs from redis://127.0.0.1" in line, line
            items = [
                hosted.upload(clips["mp4"], "mkv-x264").json()["item_id"],
                hosted.upload(clips["gif"], "webp").json()["item_id"],
                hosted.upload(clips["cut_faststart"], "mkv-x264").json()["item_id"],
            ]
            done = [hosted.wait(i) for i in items]
            assert [d["status"] for d in done] == [
                "finished_successful",
                "finished_successful",
                "finished_with_errors",
            ]
            assert sorted(hosted.files("outputs")) == sorted(
                [f"{items[0]}.mkv", f"{items[1]}.webp"]
            )
            with hosted.client() as http:
                workers = http.get("/api/convert/workers").json()["workers"]
            assert workers
            assert all(w["remote"] == 1 for w in workers)
            assert not list((elsewhere / "convert").rglob("output.*"))  # handed in, not kept
            assert not (elsewhere / "convert" / "inputs").exists()
            assert not _shares(elsewhere, hosted)
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        with hosted.client() as http:
            assert http.get("/api/convert/workers").json()["workers"] == []  # said goodbye


def _shares(elsewhere: Path, hosted: Hosted) -> bool:
    return elsewhere.resolve().is_relative_to(hosted.data_dir.resolve())


def test_a_worker_elsewhere_needs_redis_and_a_token(tmp_path: Path) -> None:
    for extra, message in (
        ({}, "takes jobs through Redis"),
        ({"HOMEKEEP_CONVERT_BROKER": "redis://127.0.0.1:1/0"}, "--token"),
    ):
        done = subprocess.run(
            [
                *HOMEKEEP,
                "--data-dir",
                str(tmp_path),
                "convert",
                "worker",
                "--server",
                "http://127.0.0.1:1",
            ],
            capture_output=True,
            text=True,
            env=clean_env(extra),
            timeout=30,
            check=False,
        )
        assert done.returncode == 2
        assert done.stderr.startswith("error: ")
        assert message in done.stderr
