"""Tickets: one valid use, and every kind of bad ticket refused with the same answer."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homekeep.pool.tickets import (
    REFUSED_MESSAGE,
    TicketChecker,
    TicketRefused,
    load_secret,
    mint,
    server_key,
)

SECRET = b"k" * 32


class Clock:
    """The real clock moved by ``offset`` seconds, which the test sets."""

    def __init__(self, offset: float = 0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


def door(instance: str = "s1.aaaa", clock: Clock | None = None) -> TicketChecker:
    if clock is None:
        return TicketChecker(server_key(SECRET, instance), instance)
    return TicketChecker(server_key(SECRET, instance), instance, clock=clock)


def ticket_for(instance: str = "s1.aaaa", ttl: float = 60, secret: bytes = SECRET) -> str:
    text, _ = mint(server_key(secret, instance), server=instance, client="c1", name="ann", ttl=ttl)
    return text


def refused(checker: TicketChecker, text: object) -> str:
    with pytest.raises(TicketRefused) as caught:
        checker.check(text)
    return str(caught.value)


def test_a_ticket_lets_its_client_in_once() -> None:
    checker = door()
    text = ticket_for()
    ticket = checker.check(text)
    assert (ticket.client, ticket.name, ticket.server) == ("c1", "ann", "s1.aaaa")
    assert refused(checker, text) == REFUSED_MESSAGE  # replayed


def test_forged_expired_replayed_and_other_server_tickets_get_the_same_answer() -> None:
    checker = door()
    used = ticket_for()
    checker.check(used)
    payload, mac = ticket_for().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["c"] = "c-someone-else"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    cases = {
        "replayed": used,
        "forged payload": f"{edited}.{mac}",
        "forged mac": f"{payload}.{mac[:-2]}AA",
        "other server": ticket_for("s2.bbbb"),
        "other pool's secret": ticket_for(secret=b"x" * 32),
        "no mac": payload,
        "empty": "",
        "not a string": 12345,
        "huge": "A" * 100_000,
        "non-ascii": "é" * 10,
    }
    answers = {name: refused(checker, text) for name, text in cases.items()}
    answers["expired"] = refused(door(clock=Clock(offset=6)), ticket_for(ttl=5))
    assert set(answers.values()) == {REFUSED_MESSAGE}


def test_used_ids_are_forgotten_after_expiry_so_memory_stays_bounded() -> None:
    clock = Clock()
    checker = door(clock=clock)
    for _ in range(500):
        checker.check(ticket_for(ttl=60))
    clock.offset = 120  # every ticket above has expired
    for _ in range(600):
        checker.check(ticket_for(ttl=300))
    assert len(checker._used) <= 700


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), st.integers(), st.none()))
def test_no_input_gets_in_or_breaks_the_checker(junk: object) -> None:
    assert refused(door(), junk) == REFUSED_MESSAGE


def test_the_secret_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    first = load_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == first
    assert len(first) == 32
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="not a pool secret"):
        load_secret(path)
