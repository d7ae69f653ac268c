"""Workers that die or are stopped: kill -9 requeues (at most max_attempts), SIGTERM gives
the job back with no partial file, start-up cleans what a crash left."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.convert import media
from tests.convert.conftest import FAST, Hosted, start
from tests.support import HOMEKEEP, clean_env

# The server runs no workers; each test starts its own `convert worker` processes. x265 at
# a slow preset makes a 40 s thumbnail-sized clip take a few seconds: time to hit it.
ENV = {
    "HOMEKEEP_CONVERT_NUMBER_OF_CONVERSION_THREADS": "0",
    "HOMEKEEP_CONVERT_X265_PRESET": "slow",
    "HOMEKEEP_CONVERT_MAX_ATTEMPTS": "2",
}


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    yield from start(tmp_path_factory.mktemp("workers"), ENV)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    return media.video(folder / "long.mp4", seconds=40, size="96x64", audio=False)


def worker(hosted: Hosted) -> subprocess.Popen[str]:
    """Start `homekeep convert worker` on the server's data directory; wait until it runs."""
    proc = subprocess.Popen(
        [*HOMEKEEP, "--data-dir", str(hosted.data_dir), "convert", "worker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env({**FAST, **ENV}),  # the same config as the server's
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "homekeep convert worker" in line, proc.stderr.read() if proc.stderr else line
    return proc


def finish(proc: subprocess.Popen[str]) -> int:
    """Stop a worker with SIGTERM (if it still runs) and return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return code


def running(hosted: Hosted, item_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until a worker reports progress on the item."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = hosted.item(item_id)
        if item["status"] == "in_progress" and (item["progress"] or {}).get("percent", 0) > 0:
            return item
        assert item["status"] in ("to_do", "in_progress"), item
        time.sleep(0.05)
    raise AssertionError(f"item {item_id} never made progress")


def queued(hosted: Hosted, clip: Path) -> str:
    answer = hosted.upload(clip, "mkv-x265")
    assert answer.status_code == 201, answer.text
    return str(answer.json()["item_id"])


def test_kill_9_requeues_after_the_lease_and_finishes_once(quiet: Hosted, long_clip: Path) -> None:
    item_id = queued(quiet, long_clip)
    first = worker(quiet)
    try:
        running(quiet, item_id)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        back = quiet.wait(item_id, "to_do", timeout=30)  # the lease ran out on the server
        assert back["attempts"] == 1
    finally:
        finish(first)
    second = worker(quiet)
    try:
        done = quiet.wait(item_id)
        assert done["status"] == "finished_successful", done
        assert done["attempts"] == 2
        assert [f for f in quiet.files("outputs") if f.startswith(item_id)] == [f"{item_id}.mkv"]
    finally:
        assert finish(second) == 0
    assert quiet.files("work") == []  # the dead worker's partial output went at start-up


def test_sigterm_stops_ffmpeg_removes_the_partial_output_and_requeues(
    quiet: Hosted, long_clip: Path
) -> None:
    item_id = queued(quiet, long_clip)
    proc = worker(quiet)
    try:
        running(quiet, item_id)
        assert any(f.endswith("output.mkv") for f in quiet.files("work"))
    finally:
        assert finish(proc) == 0
    item = quiet.item(item_id)
    assert item["status"] == "to_do"
    assert item["attempts"] == 0  # a stop is not the job's fault
    assert quiet.files("work") == []
    assert not [f for f in quiet.files("outputs") if f.startswith(item_id)]
    with quiet.client() as http:
        assert http.post(f"/api/convert/items/{item_id}/cancel").json()["status"] == "cancelled"


def test_start_up_requeues_a_dead_workers_job_and_cleans_leftovers(
    quiet: Hosted, long_clip: Path
) -> None:
    item_id = queued(quiet, long_clip)
    first = worker(quiet)
    try:
        running(quiet, item_id)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        finish(first)
    stray = quiet.area / "uploads" / "0b1e6f1e-0000-4000-8000-000000000000.part"
    stray.write_bytes(b"half an upload nobody owns")
    orphan = quiet.area / "outputs" / "0b1e6f1e-0000-4000-8000-000000000001.mkv"
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"an output no item owns")
    second = worker(quiet)  # at once: its start-up finds the dead worker, not the lease
    try:
        done = quiet.wait(item_id)
        assert done["status"] == "finished_successful", done
        assert done["attempts"] == 2
        assert not stray.exists()
        assert not orphan.exists()
    finally:
        finish(second)


def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(
    quiet: Hosted, long_clip: Path
) -> None:
    item_id = queued(quiet, long_clip)
    for attempt in (1, 2):
        proc = worker(quiet)
        try:
            running(quiet, item_id)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            finish(proc)
        if attempt == 1:
            quiet.wait(item_id, "to_do", timeout=30)
    failed = quiet.wait(item_id, "finished_with_errors", timeout=30)
    assert failed["attempts"] == 2
    assert "max_attempts" in failed["errors"][0]
    with quiet.client() as http:
        again = http.post(f"/api/convert/items/{item_id}/retry").json()
        assert again["status"] == "to_do"
        assert again["attempts"] == 0
        http.post(f"/api/convert/items/{item_id}/cancel")
