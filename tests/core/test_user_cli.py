"""`homekeep user ...` as a person runs it: on a terminal, from scripts, with bad input."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.core.test_cli import one_error_line
from tests.support import HOMEKEEP, add_user, clean_env, run_cli

PASSWORD = "correct horse battery"


def users(data_dir: Path) -> list[dict[str, object]]:
    result = run_cli("user", "list", "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, object]] = json.loads(result.stdout)
    return found


def on_terminal(data_dir: Path, *args: str, answers: list[str]) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal, typing each answer when a prompt ends in ': '."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*HOMEKEEP, "--data-dir", str(data_dir), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=clean_env(),
    )
    os.close(slave)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal: it has ended
                    break
                if not chunk:
                    break
                seen += chunk
                if pending and seen.rstrip(b" ").endswith(b":"):
                    os.write(master, pending.pop(0).encode() + b"\n")
                    seen += b"\n"
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), seen.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_add_on_a_terminal_asks_twice_and_never_shows_the_password(data_dir: Path) -> None:
    code, screen = on_terminal(
        data_dir, "user", "add", "alice", "--admin", answers=[PASSWORD, PASSWORD]
    )
    assert code == 0, screen
    assert "Password:" in screen
    assert "Password again:" in screen
    assert PASSWORD not in screen  # not echoed
    assert "added admin 'alice' (every area)" in screen
    assert [u["name"] for u in users(data_dir)] == ["alice"]


def test_two_different_answers_on_a_terminal_are_asked_again(data_dir: Path) -> None:
    code, screen = on_terminal(
        data_dir,
        "user",
        "add",
        "bob",
        answers=[PASSWORD, PASSWORD + "x", PASSWORD, PASSWORD],
    )
    assert code == 0, screen
    assert "do not match" in screen
    assert users(data_dir)[0]["name"] == "bob"


def test_add_list_access_passwd_disable_enable_remove(data_dir: Path) -> None:
    add_user(data_dir, "alice", PASSWORD, admin=True)
    result = run_cli(
        "user",
        "add",
        "bob",
        "--area",
        "images",
        "--area",
        "music",
        "--password-stdin",
        data_dir=data_dir,
        input="bob's password\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "added user 'bob' (areas: images, music)\n"
    table = run_cli("user", "list", data_dir=data_dir)
    assert "alice" in table.stdout
    assert "images, music" in table.stdout
    listed = {u["name"]: u for u in users(data_dir)}
    assert listed["alice"]["role"] == "admin"
    assert listed["bob"]["areas"] == ["images", "music"]
    assert listed["bob"]["enabled"] is True
    access = run_cli("user", "access", "bob", "--area", "sync", data_dir=data_dir)
    assert access.stdout == "user 'bob' (areas: sync)\n"
    passwd = run_cli(
        "user", "passwd", "bob", "--password-stdin", data_dir=data_dir, input="a new one!\n"
    )
    assert passwd.returncode == 0, passwd.stderr
    assert "changed the password of 'bob'" in passwd.stdout
    assert run_cli("user", "disable", "bob", data_dir=data_dir).stdout == "disabled 'bob'\n"
    assert {u["name"]: u for u in users(data_dir)}["bob"]["enabled"] is False
    assert run_cli("user", "enable", "bob", data_dir=data_dir).stdout == "enabled 'bob'\n"
    assert run_cli("user", "remove", "bob", data_dir=data_dir).stdout == "removed 'bob'\n"
    assert [u["name"] for u in users(data_dir)] == ["alice"]
    log = (data_dir / "logs" / "homekeep.log").read_text()
    assert "homekeep user: added user 'bob' (areas: images, music)" in log
    assert "homekeep user: removed 'bob'" in log
    for secret in (PASSWORD, "bob's password", "a new one!"):
        assert secret not in log


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (["user", "add", "<script>", "--password-stdin"], PASSWORD, "invalid user name"),
        (["user", "add", "a" * 500, "--password-stdin"], PASSWORD, "invalid user name"),
        (["user", "add", "../etc", "--password-stdin"], PASSWORD, "invalid user name"),
        (["user", "add", "carol", "--password-stdin"], "", "too short"),
        (["user", "add", "carol", "--password-stdin"], "seven77", "too short"),
        (["user", "add", "carol", "--password-stdin"], "x" * 100_000, "too long"),
        (["user", "add", "carol", "--area", "nope", "--password-stdin"], PASSWORD, "unknown area"),
        (["user", "add", "carol"], PASSWORD, "--password-stdin"),  # no terminal to ask on
        (["user", "add", "alice", "--password-stdin"], PASSWORD, "exists already"),
        (["user", "passwd", "nobody", "--password-stdin"], PASSWORD, "no user named"),
        (["user", "disable", "alice"], "", "last enabled admin"),
        (["user", "remove", "alice"], "", "last enabled admin"),
        (["user", "access", "alice", "--no-admin"], "", "last enabled admin"),
        (["user", "enable", "zed"], "", "no user named 'zed'"),
        (["user", "access", "alice", "--area", "x" * 300], "", "unknown area"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    data_dir: Path, args: list[str], stdin: str, expected: str
) -> None:
    add_user(data_dir, "alice", PASSWORD, admin=True)
    before = users(data_dir)
    result = run_cli(*args, data_dir=data_dir, input=stdin + "\n" if stdin else "")
    assert result.returncode in (2, 3, 4), result.stderr
    assert expected in one_error_line(result.stderr)
    assert result.stdout == ""
    assert users(data_dir) == before
    if stdin:
        assert stdin not in result.stderr


def test_serve_says_how_to_make_the_first_admin(data_dir: Path) -> None:
    from tests.support import serve

    with serve(data_dir) as server:
        assert server.process.stdout is not None
        line = server.process.stdout.readline()
        assert "no user yet" in line
        assert "homekeep user add NAME --admin" in line
        assert f"{server.url}/setup" in line


def test_token_list_names_the_user_of_a_personal_token(data_dir: Path) -> None:
    from homekeep.core.accounts import Accounts
    from homekeep.core.config import WebSection
    from homekeep.core.paths import DataDir

    add_user(data_dir, "bob", PASSWORD, "music")
    accounts = Accounts(DataDir(data_dir), WebSection(), ("music",))
    try:
        accounts.create_token(accounts.users.get("bob"), "phone", ["music"])
    finally:
        accounts.close()
    assert run_cli("token", "create", "phone", "--scope", "all", data_dir=data_dir).returncode == 0

    def listed() -> list[tuple[object, ...]]:
        rows = json.loads(run_cli("token", "list", "--json", data_dir=data_dir).stdout)
        return [(r["name"], r["user"], r["revoked_at"] is None) for r in rows]

    assert sorted(listed(), key=str) == sorted(
        [("phone", "bob", True), ("phone", None, True)], key=str
    )
    assert "bob" in run_cli("token", "list", data_dir=data_dir).stdout
    assert run_cli("user", "remove", "bob", data_dir=data_dir).returncode == 0
    assert sorted(listed(), key=str) == sorted(
        [("phone", "(removed)", False), ("phone", None, True)], key=str
    )
