"""Hostile clients against the backup daemon on loopback: origins, tokens, paths (issue 19)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from tests.backup.conftest import Home, ask, daemon, events_until, make_tree
from tests.support import create_token


@dataclass
class Box:
    """A daemon user's home with secrets in it, and a token with the backup scope."""

    home: Home
    user: Path  # the daemon's $HOME
    secrets: Path
    token: str

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.user)}

    def jobs(self) -> list[dict[str, Any]]:
        saved: list[dict[str, Any]] = tomllib.loads(self.home.config.read_text())["backup"].get(
            "jobs", []
        )
        return saved


@pytest.fixture
def box(home: Home) -> Box:
    user = home.tmp / "user"
    secrets = make_tree(user / "secrets", {"id_ed25519": "PRIVATE KEY\n", "notes.txt": "pin\n"})
    make_tree(user / ".ssh", {"authorized_keys": "ssh-ed25519 AAAA me@laptop\n"})
    make_tree(user / ".config" / "systemd" / "user", {"x.service": "[Unit]\n"})
    (user / "backups").mkdir()
    # The section is written without allowed_roots: the defaults are under test.
    home.config.write_text(f'[backup]\nroot = "{user / "backups"}"\n', encoding="utf-8")
    return Box(home, user, secrets, create_token(home.data, "phone", "backup"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add(source: str | Path, target: str | Path, name: str = "loot") -> dict[str, Any]:
    return {
        "request": "AddDrive",
        "Drives": [{name: {"Source": str(source), "Target": str(target)}}],
    }


def take_over(ws: ClientConnection, box: Box) -> None:
    """What the probe did: add a drive of the secrets, run it, wait for the copy."""
    assert ask(ws, add(box.secrets, box.user / "loot"))["Result"] == "Success"
    assert ask(ws, {"request": "RunDrive", "Name": "loot"})["Result"] == "Success"
    events_until(ws, "RunFinished")


def closed_code(ws: ClientConnection) -> int | None:
    """The close code the server sent, once it closes the connection (no more messages)."""
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=15)
    return closed.value.rcvd.code if closed.value.rcvd else None


def refused(box: Box, url: str, **options: Any) -> InvalidStatus:
    """The handshake's refusal; without one, the attack the probe made goes through."""
    with pytest.raises(InvalidStatus) as caught, connect(url, **options) as ws:
        take_over(ws, box)
    return caught.value


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example"])
@pytest.mark.parametrize("with_token", [False, True])
def test_a_foreign_page_is_refused_at_the_handshake(
    box: Box, origin: str, with_token: bool
) -> None:
    with daemon(box.home, env=box.env) as url:
        headers = bearer(box.token) if with_token else {}
        answer = refused(box, url, origin=Origin(origin), additional_headers=headers).response
        assert answer.status_code == 403
        assert b"origin" in answer.body.lower()
    assert not (box.user / "loot").exists()
    assert box.jobs() == []


def test_the_daemons_own_origin_is_let_in_with_a_token(box: Box) -> None:
    with daemon(box.home, env=box.env) as url:
        own = Origin(url.replace("ws://", "http://"))
        with connect(url, origin=own, additional_headers=bearer(box.token)) as ws:
            assert ask(ws, {"request": "ListDrives"}) == {"response": "ListDrives", "Drives": []}
        # A browser cannot set headers: its first message carries the token instead.
        with connect(url, origin=own) as ws:
            assert ask(ws, {"request": "Auth", "Token": box.token}) == {
                "response": "Auth",
                "Result": "Success",
                "Name": "phone",
            }
            take_over(ws, box)
    assert (box.user / "loot" / "notes.txt").read_text() == "pin\n"


def test_without_a_token_nothing_is_answered_and_the_connection_closes(box: Box) -> None:
    with daemon(box.home, env=box.env) as url:
        with connect(url) as ws:
            answer = ask(ws, add(box.secrets, box.user / "loot"))
            assert answer["Result"] == "Failure"
            assert answer["Error"] == "Unauthorized"
            assert "Authorization: Bearer" in answer["Message"]
            assert closed_code(ws) == 1008
        with connect(url) as ws:
            assert ask(ws, {"request": "ListDrives"})["Error"] == "Unauthorized"
            assert closed_code(ws) == 1008
    assert box.jobs() == []


def test_bad_tokens_are_refused(box: Box) -> None:
    from homekeep.core.tokens import TokenStore

    store = TokenStore(box.home.data / "homekeep.sqlite")
    other = store.create("player", ["music"], ["music", "backup"])
    revoked = store.create("old-phone", ["backup"], ["backup"])
    store.revoke("old-phone")
    store.close()
    with daemon(box.home, env=box.env) as url:
        for headers, status in [
            (bearer("nope"), 401),
            (bearer(revoked), 401),
            ({"Authorization": f"Basic {box.token}"}, 401),
            (bearer(other), 403),
        ]:
            assert refused(box, url, additional_headers=headers).response.status_code == status
        for token, error in [
            ("nope", "Unauthorized"),
            (revoked, "Unauthorized"),
            (other, "Forbidden"),
        ]:
            with connect(url) as ws:
                answer = ask(ws, {"request": "Auth", "Token": token})
                assert (answer["response"], answer["Result"], answer["Error"]) == (
                    "Auth",
                    "Failure",
                    error,
                )
                assert closed_code(ws) == 1008
        with connect(url) as ws:
            assert ask(ws, {"request": "Auth", "Token": 7})["Error"] == "Unauthorized"
    assert box.jobs() == []
    assert not (box.user / "loot").exists()


def test_a_token_in_the_url_is_refused_even_a_good_one(box: Box) -> None:
    with daemon(box.home, env=box.env) as url:
        for query in (f"?token={box.token}", "?token=nope", f"?x=1&Access_Token={box.token}"):
            answer = refused(box, f"{url}/{query}").response
            assert answer.status_code == 400
            assert b"Authorization: Bearer" in answer.body


def test_a_token_revoked_while_connected_stops_working(box: Box) -> None:
    with authed(box) as ws:
        assert ask(ws, {"request": "ListDrives"})["response"] == "ListDrives"
        assert box.home.cli("token", "revoke", "phone").returncode == 0
        answer = ask(ws, add(box.secrets, box.user / "loot"))
        assert answer["Error"] == "Unauthorized"
        assert closed_code(ws) == 1008
    assert box.jobs() == []


def test_events_reach_only_authenticated_clients(box: Box) -> None:
    with (
        daemon(box.home, env=box.env) as url,
        connect(url) as idle,
        connect(url, additional_headers=bearer(box.token)) as ws,
    ):
        take_over(ws, box)
        try:
            leaked = idle.recv(timeout=1)
        except (TimeoutError, ConnectionClosed):
            leaked = None
        assert leaked is None


@contextmanager
def authed(box: Box) -> Iterator[ClientConnection]:
    """A daemon for the box and a client with its token."""
    with (
        daemon(box.home, env=box.env) as url,
        connect(url, additional_headers=bearer(box.token)) as ws,
    ):
        yield ws


def _paths(box: Box, value: str) -> str:
    return value.format(home=box.user, data=box.home.data, tmp=box.home.tmp)


FORBIDDEN_SOURCES = [
    "/etc",
    "/root",
    "/proc",
    "/",
    "{data}",
    "{data}/backup",
    "{home}/.ssh",
    "{home}/.config",
    "{tmp}",  # outside every allowed root
    "{home}/etc-link",  # a link into /etc
    "{home}/etc-link/cron.d",
]
FORBIDDEN_TARGETS = [
    "/etc/cron.d",
    "/etc/new-folder",
    "/root/x",
    "/usr/local/bin",
    "/var/spool/cron/crontabs",
    "{home}",  # the allowed root itself: a mirror would wipe the rest of it
    "{home}/.ssh",
    "{home}/.ssh/new",
    "{home}/.config/systemd/user",
    "{home}/.local/bin",
    "{data}",
    "{data}/backup/x",
    "{tmp}",  # holds the data directory
    "{tmp}/elsewhere",  # outside every allowed root
    "{home}/ssh-link",  # a link into ~/.ssh
    "{home}/ssh-link/new",
    "{home}/up/../.ssh",
]
REMOTE_TARGETS = [
    "rsync://127.0.0.1/module",
    "rsync://127.0.0.1:8873/module/path",
    "user@host:path",
    "hk@127.0.0.1:/srv/x",
    "nas.local:backups",
    "cloud:bucket/path",  # a remote of the rclone config
]


@pytest.fixture
def links(box: Box) -> Box:
    (box.user / "etc-link").symlink_to("/etc")
    (box.user / "ssh-link").symlink_to(box.user / ".ssh")
    (box.user / "up").mkdir()
    conf = box.home.tmp / "rclone.conf"
    conf.write_text(f"[cloud]\ntype = local\n\n[other]\ntype = alias\nremote = {box.user}\n")
    box.home.config.write_text(
        box.home.config.read_text() + f'rclone_config = "{conf}"\n', encoding="utf-8"
    )
    return box


def test_forbidden_sources_and_targets_are_refused(links: Box) -> None:
    box = links
    fine_target = box.user / "mirrors" / "ok"
    with authed(box) as ws:
        seen: dict[str, dict[str, Any]] = {}
        for i, raw in enumerate(FORBIDDEN_SOURCES):
            seen[f"source {raw}"] = ask(ws, add(_paths(box, raw), fine_target, f"s{i}"))
        for i, raw in enumerate(FORBIDDEN_TARGETS + REMOTE_TARGETS):
            seen[f"target {raw}"] = ask(ws, add(box.secrets, _paths(box, raw), f"t{i}"))
        accepted = [what for what, answer in seen.items() if answer["Result"] != "Failure"]
        assert accepted == []
        for what, answer in seen.items():
            kind = what.split()[0]
            assert answer["Error"] == f"Invalid {kind.title()} Path", what
            assert answer["Message"], what
        remote = seen["target user@host:path"]["Message"]
        assert "config file" in remote
        assert "allowed_roots" in seen["target {tmp}/elsewhere"]["Message"]
        assert "allowed_roots" in seen["source /"]["Message"]
        assert ".ssh" in seen["target {home}/ssh-link/new"]["Message"]
        assert ask(ws, {"request": "ListDrives"})["Drives"] == []
        # Editing a good drive into a bad one is refused the same way.
        assert ask(ws, add(box.secrets, fine_target, "ok"))["Result"] == "Success"
        for fields in (
            {"Target": "/etc/cron.d"},
            {"Target": str(box.user / ".ssh")},
            {"Target": "rsync://127.0.0.1/module"},
            {"Target": "cloud:bucket"},
            {"Source": "/etc"},
            {"Source": str(box.home.data)},
        ):
            edited = ask(ws, {"request": "EditDrive", "Name": "ok", "Drive": fields})
            assert edited["Result"] == "Failure", fields
            assert edited["Message"], fields
    assert [j["target"] for j in box.jobs()] == [str(fine_target)]
    assert sorted(p.name for p in (box.user / ".ssh").iterdir()) == ["authorized_keys"]


def test_a_link_swapped_in_after_adding_is_caught_at_run_time(box: Box) -> None:
    with authed(box) as ws:
        assert ask(ws, add(box.secrets, box.user / "mirrors" / "keys"))["Result"] == "Success"
        (box.user / "mirrors").symlink_to(box.user / ".ssh")
        assert ask(ws, {"request": "RunDrive", "Name": "loot"})["Result"] == "Success"
        finished = events_until(ws, "RunFinished")[-1]
        assert finished["Result"] == "error"
        assert ".ssh" in " ".join(finished["Errors"])
    assert sorted(p.name for p in (box.user / ".ssh").iterdir()) == ["authorized_keys"]


def test_init_refuses_the_same_paths_but_takes_remote_targets(box: Box) -> None:
    def init(*args: str | Path) -> Any:
        return box.home.cli("backup", "init", "--name", "x", *args, env=box.env)

    cases: list[tuple[list[str | Path], str]] = [
        (["--source", "/etc"], "/etc"),
        (["--source", box.home.data], "data directory"),
        (["--source", box.home.tmp], "allowed_roots"),
        (["--source", box.secrets, "--target", box.user / ".ssh"], ".ssh"),
        (["--source", box.secrets, "--target", "/etc/cron.d"], "/etc"),
    ]
    for args, message in cases:
        result = init(*args)
        assert result.returncode == 2, (args, result.stdout)
        assert message in result.stderr, args
        assert result.stderr.count("\n") == 1
    assert box.jobs() == []
    # The config file's owner may send backups off the machine; the API may not.
    remote = init("--source", box.secrets, "--target", "me@nas.local:backups")
    assert remote.returncode == 0, remote.stderr
    assert [j["target"] for j in box.jobs()] == ["me@nas.local:backups"]


def test_a_job_outside_the_roots_is_refused_at_run_time_until_listed(box: Box) -> None:
    outside = make_tree(box.home.tmp / "opt-data", {"f.txt": "x\n"})
    job = {"name": "opt", "source": str(outside)}
    box.home.config.write_text(
        f'[backup]\nroot = "{box.user / "backups"}"\n[[backup.jobs]]\n{_toml_table(job)}',
        encoding="utf-8",
    )
    refused = box.home.cli("backup", "run", "opt", env=box.env)
    assert refused.returncode == 1
    assert "allowed_roots" in refused.stderr
    assert not (box.user / "backups" / "opt").exists()
    text = box.home.config.read_text().replace(
        "[[backup.jobs]]", f'allowed_roots = ["~", "{outside}"]\n[[backup.jobs]]'
    )
    box.home.config.write_text(text, encoding="utf-8")
    done = box.home.cli("backup", "run", "opt", env=box.env)
    assert done.returncode == 0, done.stderr
    assert (box.user / "backups" / "opt" / "f.txt").read_text() == "x\n"


def _toml_table(values: dict[str, str]) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def test_a_listed_page_is_let_in_and_only_that_one(box: Box) -> None:
    box.home.config.write_text(
        box.home.config.read_text() + 'daemon_origins = ["HTTP://NAS.local:8080/"]\n',
        encoding="utf-8",
    )
    with daemon(box.home, env=box.env) as url:
        with connect(url, origin=Origin("http://nas.local:8080")) as ws:
            assert ask(ws, {"request": "Auth", "Token": box.token})["Result"] == "Success"
        for other in ("http://nas.local:8081", "https://nas.local:8080", "http://nas.local"):
            answer = refused(box, url, origin=Origin(other), additional_headers=bearer(box.token))
            assert answer.response.status_code == 403, other


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('daemon_origins = ["nas.local"]', "is not an origin"),
        ('daemon_origins = ["http://nas.local/path"]', "is not an origin"),
        ('allowed_roots = ["srv"]', "not an absolute path"),
    ],
)
def test_bad_access_settings_are_one_line_errors(box: Box, line: str, message: str) -> None:
    box.home.config.write_text(box.home.config.read_text() + line + "\n", encoding="utf-8")
    result = box.home.cli("backup", "list", env=box.env)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_retired_require_token_key_still_loads_with_a_warning(box: Box) -> None:
    box.home.config.write_text(
        box.home.config.read_text() + "daemon_require_token = false\n", encoding="utf-8"
    )
    result = box.home.cli("backup", "list", env=box.env)
    assert result.returncode == 0, result.stderr
    assert "daemon_require_token is no longer read" in result.stderr


def test_two_origin_headers_are_refused(box: Box) -> None:
    import socket

    with daemon(box.home, env=box.env) as url:
        host, port = url.removeprefix("ws://").split(":")
        own = f"http://{host}:{port}"
        request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\n"
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Authorization: Bearer {box.token}\r\n"
            f"Origin: {own}\r\nOrigin: http://evil.example\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request.encode())
            status = sock.recv(200).split(b"\r\n", 1)[0]
        assert status == b"HTTP/1.1 403 Forbidden"


def test_connections_past_the_bound_are_refused_with_503(box: Box) -> None:
    with box.home.config.open("a", encoding="utf-8") as fh:
        fh.write("daemon_max_connections = 5\n")
    with daemon(box.home, env=box.env) as url:
        idle = [connect(url, legacy=True) for _ in range(5)]  # no token: each may wait 10 s
        try:
            with pytest.raises(InvalidStatus) as caught:
                connect(url, additional_headers=bearer(box.token))
            assert caught.value.response.status_code == 503
        finally:
            for ws in idle:
                ws.close()
        with connect(url, additional_headers=bearer(box.token)) as ws:
            assert ask(ws, {"request": "ListDrives"})["Drives"] == []
