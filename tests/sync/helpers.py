"""Shared helpers for the sync tests: a real server, the real client CLI, tree snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.support import Server, create_token, run_cli, running


@dataclass
class SyncServer:
    """A running `homekeep sync server` with its folder and a token."""

    server: Server
    root: Path
    data_dir: Path
    token: str

    @property
    def url(self) -> str:
        return self.server.url


def sync_token(data_dir: Path, name: str = "laptop", *clients: str) -> str:
    """Create a sync token with the real CLI, bound to ``clients``; by default to any
    client ('*'), since the tests push under many names (tests/sync/test_security.py
    checks the bindings)."""
    args: list[str] = ["token", "create", name, "--scope", "sync"]
    for client in clients or ("*",):
        args += ["--client", client]
    result = run_cli(*args, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@contextmanager
def sync_server(
    tmp: Path,
    *extra: str,
    port: int = 0,
    token_name: str = "laptop",  # noqa: S107
    env: dict[str, str] | None = None,
) -> Iterator[SyncServer]:
    """Start a sync server receiving into ``tmp/server`` with one sync token."""
    data = tmp / "server-data"
    root = tmp / "server"
    token = sync_token(data, token_name)
    args: list[str | Path] = ["sync", "server", root, "--port", str(port), *extra]
    with running(args, data_dir=data, env=env) as srv:
        yield SyncServer(srv, root, data, token)


def push(
    src: Path, srv: SyncServer, name: str = "laptop", *extra: str, data_dir: Path | None = None
) -> dict[str, Any]:
    """Run `homekeep sync push --json` and return its summary."""
    result = run_cli(
        "sync",
        "push",
        src,
        "--server",
        srv.url,
        "--token",
        srv.token,
        "--name",
        name,
        "--json",
        *extra,
        data_dir=data_dir or src.parent / f"client-data-{name}",
    )
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a user would compare: kind, content, mtime (of folders too, the top one
    included, as "."), mode, link target."""
    top = root.stat()
    out: dict[str, tuple[Any, ...]] = {".": ("dir", top.st_mtime_ns, stat.S_IMODE(top.st_mode))}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", str(path.readlink()))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mtime_ns, stat.S_IMODE(st.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = ("file", digest, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def wait_until(check: Callable[[], bool], timeout: float = 20, step: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes; return the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def same_tree(a: Path, b: Path) -> bool:
    """True if both trees look the same to a user."""
    try:
        return snapshot(a) == snapshot(b)
    except OSError:
        return False


@dataclass(frozen=True)
class TlsServer:
    """A sync server with a certificate from a test CA."""

    server: SyncServer
    ca_file: Path
    fingerprint: str  # SHA-256 of the certificate, hex


@contextmanager
def tls_sync_server(tmp: Path) -> Iterator[TlsServer]:
    """Start `homekeep sync server --tls-cert --tls-key` with a certificate for 127.0.0.1."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp / "cert.pem", tmp / "key.pem", tmp / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    data = tmp / "server-data"
    token = sync_token(data)
    args: list[str | Path] = [
        *("sync", "server", tmp / "server", "--port", "0"),
        *("--tls-cert", cert_file, "--tls-key", key_file),
    ]
    with running(args, data_dir=data, verify=ssl.create_default_context(cafile=ca_file)) as srv:
        assert srv.url.startswith("https://")
        server = SyncServer(srv, tmp / "server", data, token)
        yield TlsServer(server, ca_file, hashlib.sha256(der).hexdigest())


@contextmanager
def small_limit_server(tmp: Path) -> Iterator[SyncServer]:
    """A sync server that accepts request bodies of at most 1 MiB."""
    data = tmp / "server-data"
    token = sync_token(data)
    env = {"HOMEKEEP_SYNC_MAX_REQUEST_BYTES": str(1 << 20)}
    args: list[str | Path] = ["sync", "server", tmp / "server", "--port", "0"]
    with running(args, data_dir=data, env=env) as srv:
        yield SyncServer(srv, tmp / "server", data, token)


def api_error(response: httpx.Response, status: int) -> str:
    """Check ``response`` is an error of ``status`` in the API's shape; return its code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return str(body["error"]["code"])


# tokens a write must be refused with: none, garbage, unknown, and one without sync scope
BAD_TOKENS = pytest.mark.parametrize(
    ("token", "status"),
    [("", 401), ("garbage", 401), ("hk_000000000000_" + "A" * 43, 401), ("MUSIC", 403)],
    ids=["none", "garbage", "unknown", "unscoped"],
)


def bad_token(srv: SyncServer, token: str, name: str) -> str:
    """The token a BAD_TOKENS case stands for ("MUSIC": a real token of another scope)."""
    return create_token(srv.data_dir, name, "music") if token == "MUSIC" else token
