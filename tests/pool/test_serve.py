"""Inside `homekeep serve`: the pool starts with the server and drains when it stops."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psutil

from tests.support import create_token, serve


def test_the_pool_starts_and_stops_with_homekeep_serve(data_dir: Path) -> None:
    token = create_token(data_dir, "all", "all")
    headers = {"Authorization": f"Bearer {token}"}
    env = {"HOMEKEEP_POOL_MIN_IDLE": "2", "HOMEKEEP_POOL_PING_INTERVAL_SECONDS": "0.5"}
    with serve(data_dir, env=env) as server:
        deadline = time.monotonic() + 20
        status = httpx.get(f"{server.url}/api/pool/servers", headers=headers).json()
        while status["pool"]["ready"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = httpx.get(f"{server.url}/api/pool/servers", headers=headers).json()
        assert status["pool"]["ready"] == 2
        assert 'href="/pool/"' in httpx.get(f"{server.url}/").text
        seat = httpx.post(f"{server.url}/api/pool/allocate", headers=headers).json()
        assert seat["name"] == "all"
        pids = [p.pid for p in psutil.Process(server.process.pid).children(recursive=True)]
        assert {s["pid"] for s in status["servers"]} <= set(pids)
        assert server.stop(signal.SIGTERM) == 0
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        for pid in pids
    )
