"""Test support: run the real CLI and the real server as subprocesses on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

HOMEKEEP = [sys.executable, "-m", "homekeep"]
ROOT = Path(__file__).resolve().parent.parent
_URL_RE = re.compile(r"(https?://[^\s/]+)")


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: no HOMEKEEP_* leaking in from the caller, no proxies."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HOMEKEEP_") and "proxy" not in k.lower()
    }
    env["NO_PROXY"] = "*"
    env.update(extra or {})
    return env


def run_cli(
    *args: str | Path,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``homekeep [--data-dir D] ARGS`` and return the finished process."""
    cmd = [*HOMEKEEP]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    cmd += [str(a) for a in args]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=clean_env(env),
        input=input,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


@dataclass
class Server:
    """A running server process and the URL it announced."""

    process: subprocess.Popen[str]
    url: str
    data_dir: Path | None

    def client(self, token: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the server and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)


@contextmanager
def running(
    args: Sequence[str | Path],
    *,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/healthz",
    verify: bool | ssl.SSLContext = True,
    timeout: float = 30,
) -> Iterator[Server]:
    """Start ``homekeep [--data-dir D] ARGS``, a server that prints its URL; wait for it.

    The command must print a line with its URL on stdout, as ``homekeep serve --port 0``
    does; the server is stopped with SIGTERM on exit.
    """
    cmd = [*HOMEKEEP]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    cmd += [str(a) for a in args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(env),
    )
    server: Server | None = None
    try:
        deadline = time.monotonic() + timeout
        url = None
        assert proc.stdout is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if match := _URL_RE.search(line):
                url = match[1]
        if url is None:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise RuntimeError(f"server did not announce a URL: {err}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + ready_path, verify=verify, timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        server = Server(proc, url, data_dir)
        yield server
    finally:
        if server is not None:
            server.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def serve(
    data_dir: Path, *extra: str | Path, env: Mapping[str, str] | None = None
) -> AbstractContextManager[Server]:
    """Shorthand: ``homekeep serve --port 0`` on a data dir."""
    return running(["serve", "--port", "0", *extra], data_dir=data_dir, env=env)


def create_token(data_dir: Path, name: str, *scopes: str) -> str:
    """Create a token with the real CLI and return its secret."""
    args: list[str] = ["token", "create", name]
    for scope in scopes:
        args += ["--scope", scope]
    result = run_cli(*args, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def add_user(data_dir: Path, name: str, password: str, *areas: str, admin: bool = False) -> None:
    """Add a user with the real CLI (the password on standard input)."""
    args: list[str] = ["user", "add", name, "--password-stdin"]
    if admin:
        args.append("--admin")
    for area in areas:
        args += ["--area", area]
    result = run_cli(*args, data_dir=data_dir, input=password + "\n")
    assert result.returncode == 0, result.stderr


_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')
_META_RE = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass
class WebSession:
    """A client that logs in through the login form, as a browser would, and keeps the cookie.

    ``source`` is the loopback address the client connects from (each its own for the
    login backoff, which also counts per address).
    """

    client: httpx.Client
    csrf: str = ""

    @classmethod
    def open(cls, url: str, source: str = "127.0.0.1", verify: bool | str = True) -> WebSession:
        transport = httpx.HTTPTransport(local_address=source, verify=verify)
        return cls(httpx.Client(base_url=url, transport=transport, timeout=30))

    @property
    def origin(self) -> str:
        return str(self.client.base_url).rstrip("/")

    def form_token(self, path: str = "/login") -> str:
        """Load a form page and return the CSRF token it carries."""
        page = self.client.get(path)
        found = _CSRF_RE.search(page.text)
        assert found is not None, page.text[:500]
        return found[1]

    def login(self, name: str, password: str, next_url: str = "/") -> httpx.Response:
        """Send the login form; on success the session cookie and its CSRF token are kept."""
        token = self.form_token("/login")
        response = self.client.post(
            "/login",
            data={"csrf_token": token, "name": name, "password": password, "next": next_url},
            headers={"Origin": self.origin},
        )
        if response.status_code == 303:
            self.refresh_csrf()
        return response

    def refresh_csrf(self) -> None:
        """Read the session's CSRF token from a page."""
        found = _META_RE.search(self.client.get("/account").text)
        assert found is not None
        self.csrf = found[1]

    def post(
        self,
        path: str,
        data: Mapping[str, str | list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a form from one of our pages: same origin, the session's CSRF token."""
        body = {"csrf_token": self.csrf, **(data or {})}
        return self.client.post(path, data=body, headers={"Origin": self.origin, **(headers or {})})

    def close(self) -> None:
        self.client.close()
