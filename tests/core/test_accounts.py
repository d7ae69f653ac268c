"""Users, sessions, login backoff and tokens on a real SQLite file, with real argon2id."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.core import passwords, throttle
from homekeep.core.accounts import WRONG, Accounts
from homekeep.core.auth import safe_next
from homekeep.core.config import WebSection
from homekeep.core.errors import (
    AuthError,
    Conflict,
    Forbidden,
    InvalidInput,
    RateLimited,
    UsageError,
)
from homekeep.core.paths import DataDir
from homekeep.core.proxies import client_of, is_loopback, networks
from homekeep.core.sessions import MAX_PER_USER

AREAS = ("sync", "backup", "images", "music")


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    found = Accounts(DataDir(tmp_path / "data"), WebSection(), AREAS)
    yield found
    found.close()


def _rows(accounts: Accounts, sql: str) -> list[sqlite3.Row]:
    return accounts.db.query(sql)


def test_a_password_is_stored_as_an_argon2id_hash_and_checked(accounts: Accounts) -> None:
    user = accounts.users.add("alice", "correct horse", areas=["images"], known_areas=AREAS)
    assert user.areas == ("images",)
    assert not user.admin
    stored = _rows(accounts, "SELECT password_hash FROM users")[0][0]
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert accounts.users.check_password("alice", "correct horse") == user
    assert accounts.users.check_password("ALICE", "correct horse") == user  # names ignore case
    assert accounts.users.check_password("alice", "correct horsE") is None
    assert accounts.users.check_password("nobody", "correct horse") is None
    assert accounts.users.check_password("../../etc", "x") is None


@pytest.mark.parametrize(
    "name",
    ["", " ", "-lead", ".dot", "a" * 33, "a b", "<b>", "é", "a/b", "a\nb", "a\x00", "'; DROP"],
)
def test_hostile_user_names_are_refused_and_nothing_is_written(
    accounts: Accounts, name: str
) -> None:
    with pytest.raises(InvalidInput, match="invalid user name"):
        accounts.users.add(name, "long enough pw")
    assert accounts.users.count() == 0


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "too short"),
        ("seven77", "too short"),
        ("x" * 1025, "too long"),
        ("nul\x00in it", "NUL"),
    ],
)
def test_bad_passwords_are_refused(accounts: Accounts, password: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        accounts.users.add("bob", password)
    assert accounts.users.count() == 0


def test_unknown_areas_and_duplicate_names_are_refused(accounts: Accounts) -> None:
    with pytest.raises(InvalidInput, match="unknown area 'nope'"):
        accounts.users.add("bob", "long enough pw", areas=["nope"], known_areas=AREAS)
    accounts.users.add("bob", "long enough pw")
    with pytest.raises(Conflict, match="exists already"):
        accounts.users.add("BOB", "another password")
    assert accounts.users.count() == 1


def test_a_long_guess_never_matches_a_password_it_starts_with(accounts: Accounts) -> None:
    exact = "p" * passwords.MAX_LENGTH
    accounts.users.add("max", exact)
    assert accounts.users.check_password("max", exact) is not None
    assert accounts.users.check_password("max", exact + "extra") is None


def test_the_last_enabled_admin_stays(accounts: Accounts) -> None:
    accounts.users.add("root", "long enough pw", admin=True)
    actions: list[Callable[[], object]] = [
        lambda: accounts.users.disable("root"),
        lambda: accounts.users.remove("root"),
        lambda: accounts.users.set_access("root", admin=False, areas=[], known_areas=AREAS),
    ]
    for action in actions:
        with pytest.raises(Conflict, match="last enabled admin"):
            action()
    accounts.users.add("second", "long enough pw", admin=True)
    assert not accounts.users.disable("root").enabled


def test_a_removed_users_id_is_never_given_again(accounts: Accounts) -> None:
    first = accounts.users.add("temp", "long enough pw")
    token = accounts.create_token(first, "phone", ["all"])
    accounts.remove_user("temp")
    again = accounts.users.add("temp", "long enough pw")
    assert again.id != first.id
    with pytest.raises(AuthError):
        accounts.token_caller(token)


def test_login_answers_alike_for_an_unknown_user_and_a_wrong_password(
    accounts: Accounts,
) -> None:
    accounts.users.add("alice", "correct horse")
    with pytest.raises(AuthError) as wrong:
        accounts.login("alice", "wrong password", "192.0.2.1")
    with pytest.raises(AuthError) as unknown:
        accounts.login("mallory", "wrong password", "192.0.2.2")
    assert wrong.value.message == unknown.value.message == WRONG
    assert type(wrong.value) is type(unknown.value) is AuthError
    assert accounts.login("alice", "correct horse", "192.0.2.1").last_login_at is None
    assert accounts.users.get("alice").last_login_at is not None


def test_backoff_locks_a_name_after_repeated_failures_even_for_the_right_password(
    accounts: Accounts,
) -> None:
    accounts.users.add("alice", "correct horse")
    for n in range(throttle.FREE_PER_USER - 1):
        with pytest.raises(AuthError, match="wrong"):
            accounts.login("alice", f"guess {n}", f"192.0.2.{n}")  # each from another address
    # three failures past the free ones: locked for 8 s however slow this machine is
    for n in range(4):
        with pytest.raises((AuthError, RateLimited)):
            accounts.login("alice", f"guess {n}", f"192.0.2.{n + 50}")
    with pytest.raises(RateLimited) as locked:
        accounts.login("alice", "correct horse", "192.0.2.99")
    assert locked.value.retry_after >= 8
    assert "try again in" in locked.value.message
    # hammering while locked only lengthens the wait
    waits = []
    for _ in range(4):
        with pytest.raises(RateLimited) as again:
            accounts.login("alice", "correct horse", "192.0.2.99")
        waits.append(again.value.retry_after)
    assert waits == sorted(waits)
    assert waits[-1] >= 128
    # an unknown name is locked the same way: no telling who exists
    for n in range(throttle.FREE_PER_USER + 3):
        with pytest.raises((AuthError, RateLimited)):
            accounts.login("nobody", f"guess {n}", f"198.51.100.{n}")
    with pytest.raises(RateLimited):
        accounts.login("nobody", "x", "198.51.100.99")


def test_backoff_per_address_spans_names(accounts: Accounts) -> None:
    accounts.users.add("alice", "correct horse")
    for n in range(throttle.FREE_PER_ADDRESS + 3):
        with pytest.raises((AuthError, RateLimited)):
            accounts.login(f"user{n}", "guess", "203.0.113.5")
    with pytest.raises(RateLimited):
        accounts.login("alice", "correct horse", "203.0.113.5")
    assert accounts.login("alice", "correct horse", "203.0.113.6").name == "alice"


def test_a_disabled_user_cannot_log_in_and_loses_sessions_and_tokens(accounts: Accounts) -> None:
    accounts.users.add("admin", "long enough pw", admin=True)
    user = accounts.users.add("bob", "long enough pw", areas=["music"], known_areas=AREAS)
    secret, _ = accounts.start_session(user, "127.0.0.1", "test")
    token = accounts.create_token(user, "phone", ["music"])
    assert accounts.token_caller(token).allows("music")
    accounts.users.disable("bob")
    assert accounts.session_caller(secret) is None
    with pytest.raises(AuthError, match="disabled"):
        accounts.token_caller(token)
    with pytest.raises(Forbidden, match="disabled"):
        accounts.login("bob", "long enough pw", "127.0.0.1")
    accounts.users.enable("bob")
    assert accounts.token_caller(token).allows("music")


def test_a_personal_token_acts_within_its_users_areas(accounts: Accounts) -> None:
    user = accounts.users.add("bob", "long enough pw", areas=["music", "images"], known_areas=AREAS)
    every = accounts.create_token(user, "all-mine", ["all"])
    caller = accounts.token_caller(every)
    assert caller.areas == frozenset({"music", "images"})
    assert caller.id == f"user:{user.id}"
    assert not caller.admin
    with pytest.raises(UsageError, match="unknown scope 'sync'"):
        accounts.create_token(user, "more", ["sync"])
    accounts.users.set_access("bob", admin=False, areas=["images"], known_areas=AREAS)
    assert accounts.token_caller(every).areas == frozenset(
        {"images"}
    )  # the grant shrank: so did the token
    admin = accounts.users.add("root", "long enough pw", admin=True)
    caller = accounts.token_caller(accounts.create_token(admin, "root-images", ["images"]))
    assert caller.areas == frozenset({"images"})
    assert not caller.admin  # a token never manages users


def test_sessions_end_when_idle_or_too_old_and_forged_ones_are_unknown(
    accounts: Accounts,
) -> None:
    user = accounts.users.add("alice", "long enough pw")
    idle, _ = accounts.start_session(user, "127.0.0.1", "a")
    old, _ = accounts.start_session(user, "127.0.0.1", "b")
    live, _ = accounts.start_session(user, "127.0.0.1", "c")
    stored = [r[0] for r in _rows(accounts, "SELECT secret_hash FROM sessions")]
    assert not {idle, old, live} & set(stored)  # only hashes are kept
    long_ago = (datetime.now(UTC) - timedelta(days=15)).isoformat(timespec="seconds")
    accounts.db.execute("UPDATE sessions SET last_seen_at = ? WHERE user_agent = 'a'", (long_ago,))
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="seconds")
    accounts.db.execute("UPDATE sessions SET expires_at = ? WHERE user_agent = 'b'", (past,))
    assert accounts.session_caller(idle) is None
    assert accounts.session_caller(old) is None
    assert accounts.session_caller(live) is not None
    assert len(_rows(accounts, "SELECT id FROM sessions")) == 1  # the dead ones are gone
    assert accounts.session_caller(live[:-1] + ("A" if live[-1] != "A" else "B")) is None
    for forged in ("", "x" * 43, "x" * 10_000, "' OR 1=1 --", "\x00" * 43):
        assert accounts.session_caller(forged) is None


def test_a_user_keeps_at_most_so_many_sessions(accounts: Accounts) -> None:
    user = accounts.users.add("alice", "long enough pw")
    first, _ = accounts.start_session(user, "127.0.0.1", "first")
    for _ in range(MAX_PER_USER):
        accounts.start_session(user, "127.0.0.1", "later")
    assert len(accounts.sessions.list(user.id)) == MAX_PER_USER
    assert accounts.session_caller(first) is None


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/%0d%0aSet-Cookie:x=1".replace("%0d%0a", "\r\n"),
        "/" + "a" * 5000,
        "",
        "http:/evil.example",
        " //evil.example",
    ],
)
def test_next_is_a_path_of_this_site_or_the_landing_page(target: str) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/images/", "/music/?q=a%20b", "/account#tokens"])
def test_a_local_next_is_kept(target: str) -> None:
    assert safe_next(target) == target


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_next_never_leaves_the_site(text: str) -> None:
    found = safe_next(text)
    assert found.startswith("/")
    assert not found.startswith(("//", "/\\"))


TRUSTED = networks(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        ("192.0.2.7", [(b"x-forwarded-for", b"127.0.0.1")], "192.0.2.7"),  # not a proxy
        ("192.0.2.7", [(b"forwarded", b"for=127.0.0.1")], "192.0.2.7"),
        ("127.0.0.1", [(b"x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
        ("127.0.0.1", [(b"x-forwarded-for", b"127.0.0.1, 198.51.100.7")], "198.51.100.7"),
        ("127.0.0.1", [(b"x-forwarded-for", b"198.51.100.7, 10.1.2.3")], "198.51.100.7"),
        (
            "127.0.0.1",
            [(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")],
            "2.2.2.2",
        ),
        ("127.0.0.1", [(b"forwarded", b'for="[2001:db8::1]:4711";proto=https')], "2001:db8::1"),
        ("127.0.0.1", [(b"forwarded", b"for=192.0.2.60:8080, for=10.0.0.1")], "192.0.2.60"),
        ("127.0.0.1", [(b"x-forwarded-for", b"garbage")], "127.0.0.1"),
        ("127.0.0.1", [(b"x-forwarded-for", b"," * 100_000)], "127.0.0.1"),
        ("127.0.0.1", [], "127.0.0.1"),
        ("::ffff:127.0.0.1", [(b"x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
    ],
)
def test_the_client_behind_trusted_proxies(
    peer: str, headers: list[tuple[bytes, bytes]], client: str
) -> None:
    assert client_of(peer, headers, TRUSTED) == client


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.1", False),
        ("10.0.0.1", False),
        ("unknown", False),
        ("", False),
    ],
)
def test_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_backoff_doubles_up_to_its_cap() -> None:
    free = throttle.FREE_PER_USER
    assert [throttle.delay(n, free) for n in range(free)] == [0.0] * free
    assert [throttle.delay(free + n, free) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert throttle.delay(10_000, free) == throttle.MAX_DELAY
