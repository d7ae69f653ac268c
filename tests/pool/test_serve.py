"""Inside `homekeep serve`: the pool starts with the server, shows on the landing page for
a logged-in user, takes sessions and tokens, and drains when the server stops."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import psutil

from tests.support import WebSession, add_user, create_token, serve


def test_the_pool_starts_and_stops_with_homekeep_serve(data_dir: Path) -> None:
    token = create_token(data_dir, "all", "all")
    add_user(data_dir, "ann", "ann's password", "pool")
    add_user(data_dir, "bob", "bob's password", "images")
    headers = {"Authorization": f"Bearer {token}"}
    env = {"HOMEKEEP_POOL_MIN_IDLE": "2", "HOMEKEEP_POOL_PING_INTERVAL_SECONDS": "0.5"}
    with serve(data_dir, env=env) as server:
        deadline = time.monotonic() + 20
        status = httpx.get(f"{server.url}/api/pool/servers", headers=headers).json()
        while status["pool"]["ready"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = httpx.get(f"{server.url}/api/pool/servers", headers=headers).json()
        assert status["pool"]["ready"] == 2
        assert (
            httpx.post(f"{server.url}/api/pool/allocate", headers=headers).json()["name"] == "all"
        )

        ann = WebSession.open(server.url)
        assert ann.login("ann", "ann's password").status_code == 303
        landing = ann.client.get("/").text
        assert 'href="/pool/"' in landing
        assert re.search(r"\d ready of \d", landing)
        assert "of 400 seats" in landing  # the defaults: 8 servers of 50
        assert ann.client.get("/pool/").status_code == 200
        assert ann.client.get("/api/pool/servers").json()["pool"]["servers"] >= 2
        # a session's POST needs the page's CSRF token and origin, like every page call
        assert ann.client.post("/api/pool/allocate", json={}).status_code == 403
        mine = ann.client.post(
            "/api/pool/allocate",
            json={},
            headers={"X-CSRF-Token": ann.csrf, "Origin": ann.origin},
        )
        assert mine.status_code == 200, mine.text
        assert mine.json()["name"] == "ann"
        ann.close()

        bob = WebSession.open(server.url, source="127.0.0.2")
        assert bob.login("bob", "bob's password").status_code == 303
        assert 'href="/pool/"' not in bob.client.get("/").text
        assert bob.client.get("/pool/").status_code == 403
        assert bob.client.get("/api/pool/servers").status_code == 403
        bob.close()

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
