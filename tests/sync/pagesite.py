"""A real `homekeep serve` with the sync server mounted, users, two devices' tokens, and
the real client CLI: what the sync page tests stand on."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import Server, WebSession, add_user, run_cli, running

ADMIN = ("root", "root password")
USER = ("bob", "bob password")  # may use sync; acts only as the folder "bob"
DEVICES = ("laptop", "desk")
OWN = {".homekeep-folder", ".homekeep-versions", ".homekeep-tmp"}


@dataclass
class Site:
    """The running server, its sync root and data directory, and a token per device."""

    server: Server
    root: Path
    data: Path
    work: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def share(self, name: str) -> Path:
        """`homekeep sync share NAME ROOT` while the server runs; its folder on the server."""
        result = run_cli("sync", "share", name, self.root, data_dir=self.data)
        assert result.returncode == 0, result.stderr
        return self.root / name

    def client(self, folder: str, device: str) -> Path:
        """The local folder of ``device`` for shared folder ``folder`` (made if new)."""
        local = self.work / f"{folder}-{device}"
        local.mkdir(exist_ok=True)
        return local

    def push(self, folder: str, device: str, *extra: str, server: str = "") -> dict[str, Any]:
        """One two-way pass (`sync push --folder`) of ``device``'s copy of ``folder``."""
        local = self.client(folder, device)
        result = run_cli(
            "sync",
            "push",
            local,
            "--server",
            server or self.url,
            "--token",
            self.tokens[device],
            "--name",
            device,
            "--folder",
            folder,
            "--json",
            *extra,
            data_dir=self.work / f"data-{folder}-{device}",
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def session(self, who: tuple[str, str] = ADMIN) -> LoggedIn:
        web = WebSession.open(self.url)
        assert web.login(*who).status_code == 303
        return LoggedIn(web)


@dataclass
class LoggedIn:
    """A logged-in user calling the page's API as the page does (cookie, CSRF, Origin)."""

    web: WebSession

    def get(self, route: str, /, **params: Any) -> httpx.Response:
        return self.web.client.get("/api/sync" + route, params=params)

    def post(self, route: str, body: Any = None, /, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.web.csrf, "Origin": self.web.origin}
        headers.update(kwargs.pop("headers", {}))
        if body is not None:
            kwargs["json"] = body
        return self.web.client.post("/api/sync" + route, headers=headers, **kwargs)


@contextmanager
def site(work: Path, env: dict[str, str] | None = None) -> Iterator[Site]:
    """`homekeep serve` with [sync] root set, an admin, a user, and a token per device."""
    data, root = work / "server-data", work / "server"
    add_user(data, *ADMIN, admin=True)
    add_user(data, *USER, "sync")
    tokens = {}
    for device in DEVICES:
        made = run_cli("token", "create", device, "--scope", "sync", "--client", "*", data_dir=data)
        assert made.returncode == 0, made.stderr
        tokens[device] = made.stdout.strip()
    settings = {"HOMEKEEP_SYNC_ROOT": str(root), **(env or {})}
    with running(["serve", "--port", "0"], data_dir=data, env=settings) as server:
        yield Site(server, root, data, work, tokens)


def tree(root: Path) -> dict[str, str]:
    """What a user sees in a folder (our own files aside): path -> content or '<dir>'."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts and rel_dir.parts[0] in OWN:
            continue
        for name in dirnames + filenames:
            rel = (rel_dir / name).as_posix()
            if rel.split("/")[0] in OWN:
                continue
            full = Path(dirpath) / name
            out[rel] = "<dir>" if full.is_dir() else full.read_text()
    return out


def make_conflict(s: Site, folder: str, name: str = "plan.txt") -> None:
    """A real conflict: both devices edit ``name`` of ``folder`` between passes."""
    laptop, desk = s.client(folder, "laptop"), s.client(folder, "desk")
    (laptop / name).write_text("base")
    s.push(folder, "laptop")
    s.push(folder, "desk")
    (laptop / name).write_text("the laptop's edit")
    (desk / name).write_text("the desk's edit, newer")
    bump = (desk / name).stat().st_mtime_ns + 2_000_000_000
    os.utime(desk / name, ns=(bump, bump))  # newer on every filesystem
    s.push(folder, "laptop")
    s.push(folder, "desk")
