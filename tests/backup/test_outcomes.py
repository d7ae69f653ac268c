"""Run classes from real exit codes, the lock against overlapping runs, failure hooks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.backup.conftest import Home, make_tree
from tests.support import HOMEKEEP, clean_env, free_port


def slow_source(tmp: Path) -> Path:
    return make_tree(tmp / "slow", {"a_big.bin": b"\0" * 3_000_000, "z_small.txt": "bye\n"})


def start_run(home: Home, job: str) -> subprocess.Popen[str]:
    cmd = [*HOMEKEEP, "--data-dir", str(home.data), "--config", str(home.config)]
    return subprocess.Popen(
        [*cmd, "backup", "run", job],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_vanished_file_is_a_warning_and_overlapping_run_is_refused(home: Home) -> None:
    src = slow_source(home.tmp)
    home.write([{"name": "slow", "source": str(src), "bwlimit": "1500"}])
    dest = home.root / "slow"
    proc = start_run(home, "slow")
    try:
        wait_for(lambda: dest.is_dir() and any(p.name.startswith(".a_big") for p in dest.iterdir()))
        second = home.cli("backup", "run", "slow")
        assert second.returncode == 4
        assert "already running" in second.stderr
        (src / "z_small.txt").unlink()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.startswith("slow: warning")
    run = home.history("slow")[-1]
    assert run["result"] == "warning"
    assert run["exit_code"] == 24
    assert any("vanished" in line and "z_small.txt" in line for line in run["errors"])
    assert (dest / "a_big.bin").stat().st_size == 3_000_000
    assert not (home.data / "backup" / "locks" / "slow.lock").exists()


def test_sigterm_cancels_the_run(home: Home) -> None:
    src = slow_source(home.tmp)
    home.write([{"name": "slow", "source": str(src), "bwlimit": "500"}])
    dest = home.root / "slow"
    proc = start_run(home, "slow")
    try:
        wait_for(lambda: dest.is_dir() and any(p.name.startswith(".a_big") for p in dest.iterdir()))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert "cancelled" in err
    run = home.history("slow")[-1]
    assert run["result"] == "cancelled"
    assert run["finished_at"] is not None
    assert not (home.data / "backup" / "locks" / "slow.lock").exists()


def test_stale_lock_is_cleared(home: Home, source: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    lock = home.data / "backup" / "locks" / "docs.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    home.write([{"name": "docs", "source": str(source)}])
    result = home.cli("backup", "run", "docs")
    assert result.returncode == 0, result.stderr
    assert not lock.exists()


def test_lock_held_by_another_host_is_respected(home: Home, source: Path) -> None:
    lock = home.data / "backup" / "locks" / "docs.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "other-host.lan", "pid": 1}))
    home.write([{"name": "docs", "source": str(source)}])
    result = home.cli("backup", "run", "docs")
    assert result.returncode == 4
    assert "other-host.lan" in result.stderr


def test_exit_code_table_is_user_overridable(home: Home, source: Path) -> None:
    target = f"rsync://127.0.0.1:{free_port()}/m/docs"
    home.write(
        [{"name": "docs", "source": str(source), "target": target}],
        exit_codes={"rsync": {"10": "warning"}},
    )
    result = home.cli("backup", "run", "docs")
    assert result.returncode == 0, result.stderr
    assert home.history("docs")[-1]["result"] == "warning"


def test_failure_hooks_run_a_command_and_post_to_a_url(home: Home, tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    marker = tmp_path / "hook.txt"
    try:
        home.write(
            [{"name": "docs", "source": str(tmp_path / "missing")}],
            on_failure_command=[
                "sh",
                "-c",
                f'echo "$HOMEKEEP_BACKUP_JOB $HOMEKEEP_BACKUP_RESULT" > {marker}',
            ],
            on_failure_url=f"http://127.0.0.1:{server.server_address[1]}/hook",
        )
        result = home.cli("backup", "run", "docs")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert marker.read_text() == "docs error\n"
    assert received[0]["job"] == "docs"
    assert received[0]["result"] == "error"
    assert "missing" in received[0]["run"]["errors"][0]


def test_run_needs_a_known_job(home: Home, source: Path) -> None:
    home.write([{"name": "docs", "source": str(source)}])
    unknown = home.cli("backup", "run", "nope")
    assert unknown.returncode == 3
    assert "jobs: docs" in unknown.stderr
    both = home.cli("backup", "run")
    assert both.returncode == 2
    everything = home.cli("backup", "run", "--all")
    assert everything.returncode == 0, everything.stderr


def test_verbose_lines_summary_and_rotating_log(home: Home, source: Path) -> None:
    home.write(
        [{"name": "docs", "source": str(source)}],
        log_max_bytes=1024,
        log_backup_count=2,
        keep_run_logs=2,
    )
    verbose = home.cli("-v", "backup", "run", "docs")
    assert verbose.returncode == 0, verbose.stderr
    assert ">f+++++++++ notes/c.md" in verbose.stderr  # every rsync line
    for _ in range(3):
        (source / "a.txt").write_text(str(time.time()))
        assert home.cli("-v", "backup", "run", "docs").returncode == 0
    logs = home.data / "backup"
    text = (logs / "backup.log").read_text()
    assert "docs: ok in " in text  # the one-line summary
    assert (logs / "backup.log").stat().st_size <= 1024 + 400
    assert (logs / "backup.log.1").exists()
    assert not (logs / "backup.log.3").exists()
    # Only the newest two runs keep their full tool output.
    kept = sorted(p.name for p in (logs / "logs" / "docs").iterdir())
    assert [name[:6] for name in kept] == ["000003", "000004"]
    assert [Path(r["log_file"]).exists() for r in home.history("docs")] == [
        False,
        False,
        True,
        True,
    ]


def test_run_loads_only_what_a_run_needs(home: Home, source: Path) -> None:
    # Start-up time is part of every `backup run`: a cron job must not pull in croniter,
    # and plotting, the daemon, the hook's HTTP client and the web server stay unloaded.
    home.write([{"name": "nightly", "source": str(source), "cron": "30 3 * * *"}])
    result = home.cli("backup", "run", "nightly", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "homekeep" in loaded
    heavy = {"croniter", "matplotlib", "websockets", "httpx", "uvicorn", "starlette", "fastapi"}
    assert loaded & heavy == set()


@pytest.mark.parametrize("cron", ["61 * * * *", "* 25 * * *", "0 0 32 * *"])
def test_out_of_range_cron_stops_the_daemon_and_init(home: Home, source: Path, cron: str) -> None:
    # The shape passes at load; the field ranges are checked where a schedule is used.
    home.write([{"name": "odd", "source": str(source), "cron": cron}])
    assert home.cli("backup", "run", "odd").returncode == 0
    cmd = ["backup", "daemon", "--host", "127.0.0.1", "--port", "0"]
    daemon = home.cli(*cmd, timeout=30)
    assert daemon.returncode == 2
    assert (
        daemon.stderr == f"error: job odd: cron: not a valid cron expression: {cron!r}; "
        f"fix it in {home.config}\n"
    )
    home.write([])
    init = home.cli("backup", "init", "--name", "x", "--source", source, "--cron", cron)
    assert init.returncode == 2
    assert "not a valid cron expression" in init.stderr


def test_lock_of_a_reused_pid_is_cleared(home: Home, source: Path) -> None:
    # The pid is alive (this test's own process) but was not the one that took the lock:
    # its start time differs, as after a reboot.
    import socket

    lock = home.data / "backup" / "locks" / "docs.lock"
    lock.parent.mkdir(parents=True)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": 1}
    lock.write_text(json.dumps(holder))
    home.write([{"name": "docs", "source": str(source)}])
    result = home.cli("backup", "run", "docs")
    assert result.returncode == 0, result.stderr
    assert not lock.exists()
    # The same pid with its real start time is a live holder.
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    holder["started"] = int(stat.rsplit(")", 1)[1].split()[19])
    lock.write_text(json.dumps(holder))
    assert home.cli("backup", "run", "docs").returncode == 4
    lock.unlink()


def test_a_lock_being_written_is_not_taken_for_stale(home: Home, source: Path) -> None:
    lock = home.data / "backup" / "locks" / "docs.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")  # another process has just created it
    home.write([{"name": "docs", "source": str(source)}])
    busy = home.cli("backup", "run", "docs")
    assert busy.returncode == 4
    assert "just being started" in busy.stderr
    old = time.time() - 60  # left empty by a crash long ago: stale
    os.utime(lock, (old, old))
    assert home.cli("backup", "run", "docs").returncode == 0
    assert not lock.exists()
    assert list(lock.parent.iterdir()) == []  # no temporary lock files left
