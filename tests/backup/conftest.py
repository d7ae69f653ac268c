"""Fixtures for the backup tests: source trees, config files, real rclone and rsync servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from websockets.sync.client import ClientConnection, connect

from tests.support import HOMEKEEP, clean_env, create_token, free_port, run_cli


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Write files (relative path -> content) under root and return root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return root


@dataclass
class Home:
    """A config file, a data dir and a backup root in a tmp dir."""

    tmp: Path
    config: Path
    data: Path
    root: Path
    _token: str = ""

    def write(self, jobs: list[dict[str, Any]], **backup: Any) -> None:
        """Write the [backup] section; jobs may use the whole tmp dir unless told otherwise."""
        section = {"root": str(self.root), "allowed_roots": [str(self.tmp)], **backup, "jobs": jobs}
        self.config.write_text(
            "# kept comment\n" + tomli_w.dumps({"backup": section}), encoding="utf-8"
        )

    def cli(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run_cli("--config", self.config, *args, data_dir=self.data, **kwargs)

    @property
    def token(self) -> str:
        """A token with the backup scope (created on first use)."""
        if not self._token:
            self._token = create_token(self.data, "tests", "backup")
        return self._token

    def client(self, url: str) -> ClientConnection:
        """A WebSocket client of the daemon at ``url``, with the token in the handshake."""
        return connect(url, additional_headers={"Authorization": f"Bearer {self.token}"})

    def history(self, job: str) -> list[dict[str, Any]]:
        result = self.cli("backup", "history", job, "--json")
        assert result.returncode == 0, result.stderr
        runs: list[dict[str, Any]] = json.loads(result.stdout)
        return runs


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path, tmp_path / "config.toml", tmp_path / "data", tmp_path / "backups")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "src",
        {
            "a.txt": "alpha\n",
            "b.jpg": b"\xff\xd8" + b"j" * 3000,
            "notes/c.md": "# notes\n",
            "cache/big.tmp": b"t" * 5000,
            "photos/2024/d.jpg": b"\xff\xd8" + b"d" * 2000,
        },
    )


@dataclass
class RcloneRemote:
    """A real rclone sftp server on loopback and an rclone.conf that names it."""

    conf: Path
    served: Path
    name: str


@pytest.fixture
def rclone_remote(tmp_path: Path) -> Iterator[RcloneRemote]:
    served = tmp_path / "remote-root"
    served.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            "rclone",
            "serve",
            "sftp",
            str(served),
            "--addr",
            f"127.0.0.1:{port}",
            "--user",
            "hk",
            "--pass",
            "secret",
            "--config",
            "/dev/null",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or re.search(r"listening on", line, re.IGNORECASE):
                break
        assert proc.poll() is None, "rclone serve sftp did not start"
        obscured = subprocess.run(
            ["rclone", "obscure", "secret"], capture_output=True, text=True, check=True
        ).stdout.strip()
        conf = tmp_path / "rclone.conf"
        conf.write_text(
            f"[b2test]\ntype = sftp\nhost = 127.0.0.1\nport = {port}\nuser = hk\n"
            f"pass = {obscured}\nshell_type = none\n",
            encoding="utf-8",
        )
        yield RcloneRemote(conf, served, "b2test")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class RsyncDaemon:
    """A real rsync daemon on loopback with one module."""

    url: str
    path: Path


@pytest.fixture
def rsync_daemon(tmp_path: Path) -> Iterator[RsyncDaemon]:
    module = tmp_path / "rsyncd-module"
    module.mkdir()
    port = free_port()
    conf = tmp_path / "rsyncd.conf"
    conf.write_text(
        f"pid file = {tmp_path / 'rsyncd.pid'}\nuse chroot = no\n"
        f"[backups]\npath = {module}\nread only = no\n"
        # As root the daemon would drop to nobody, who cannot write the tmp dir.
        + ("uid = root\ngid = root\n" if os.geteuid() == 0 else ""),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [
            "rsync",
            "--daemon",
            "--no-detach",
            f"--port={port}",
            f"--config={conf}",
            "--address=127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["rsync", f"rsync://127.0.0.1:{port}/"], capture_output=True, check=False
            )
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        yield RsyncDaemon(f"rsync://127.0.0.1:{port}/backups", module)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def daemon(home: Home, *extra: str, env: dict[str, str] | None = None) -> Iterator[str]:
    cmd = [*HOMEKEEP, "--data-dir", str(home.data), "--config", str(home.config)]
    proc = subprocess.Popen(
        [*cmd, "backup", "daemon", "--host", "127.0.0.1", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(env),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"ws://[\d.]+:\d+", line)
        assert match, proc.stderr.read() if proc.stderr else line
        yield match[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == 0


def ask(ws: ClientConnection, message: str | dict[str, Any]) -> dict[str, Any]:
    ws.send(message if isinstance(message, str) else json.dumps(message))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer: dict[str, Any] = json.loads(ws.recv(timeout=30))
        if "response" in answer:
            return answer
    raise AssertionError("no response")


def events_until(ws: ClientConnection, kind: str, timeout: float = 30) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = json.loads(ws.recv(timeout=timeout))
        seen.append(event)
        if event.get("event") == kind:
            return seen
    raise AssertionError(f"no {kind} event: {seen}")
