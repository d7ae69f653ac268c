"""A server's room over real TCP: relay, pings, properties, bad tickets, hostile lines."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from homekeep.pool.seats import Seat
from homekeep.pool.tickets import REFUSED_MESSAGE
from tests.pool.conftest import Pool, Raw, joined, leave, run

HELLO_REFUSED = {"type": "error", "code": "bad_ticket", "message": REFUSED_MESSAGE}


def hello_line(ticket: object) -> bytes:
    return json.dumps({"type": "hello", "ticket": ticket}).encode() + b"\n"


def quiet(pool: Pool) -> None:
    """Wait until no client is in and no ticket is out (earlier tests share the pool)."""
    pool.wait_until(
        lambda s: s["pool"]["clients"] == 0 and s["pool"]["reserved"] == 0,
        what="an empty pool",
    )


def answering(
    pool: Pool, server: str, check: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, Any]:
    """The server's properties once it answers and ``check`` holds (the status is cached
    for half a second, and a fresh server may be listed before it answers)."""
    status = pool.wait_until(
        lambda s: any(x["id"] == server and x["answering"] and check(x) for x in s["servers"]),
        what=f"{server} answering",
    )
    return next(x for x in status["servers"] if x["id"] == server)


def test_messages_are_relayed_to_the_others_logged_and_counted(pool: Pool) -> None:
    quiet(pool)

    async def scenario() -> None:
        ann, bob, cat = await joined(pool, 3, name="r")
        assert ann.welcome["type"] == "welcome"
        server = ann.welcome["server"]
        assert {c.welcome["server"] for c in (ann, bob, cat)} == {server}
        before = answering(pool, server)
        await ann.send("hello room \x1b[31m")
        for other in (bob, cat):
            message = await other.wait_for("message", 5)
            assert message == {
                "type": "message",
                "from": ann.client,
                "name": "r0",
                "text": "hello room \x1b[31m",
            }
        shown = await asyncio.to_thread(
            pool.wait_until,
            lambda s: any(
                x["id"] == server and x["messages_in"] == before["messages_in"] + 1
                for x in s["servers"]
            ),
            10,
            "the message counted",
        )
        shown = next(x for x in shown["servers"] if x["id"] == server)
        assert shown["messages_out"] == before["messages_out"] + 2
        assert {c["name"] for c in shown["clients"]} == {"r0", "r1", "r2"}
        assert shown["client_count"] == 3
        assert shown["memory_rss_bytes"] > 1 << 20
        assert shown["uptime_seconds"] > 0
        await leave([cat])
        left = await ann.wait_for("left", 5)
        assert left["client"] == cat.client
        await leave([ann, bob])

    run(scenario())
    deadline = time.monotonic() + 5
    printed = ""
    while "hello room" not in printed and time.monotonic() < deadline:
        time.sleep(0.05)
        printed = "".join(pool.stdout)
    assert "r0" in printed
    assert "hello room \\u001b[31m" in printed  # on the console, escaped
    assert "\x1b" not in printed


def test_a_ping_is_answered_and_a_silent_client_is_dropped(pool: Pool) -> None:
    async def scenario() -> None:
        seat = await pool.dispatch().allocate("quiet")
        raw = await Raw.connect(seat.port)
        assert (await raw.hello(seat))["type"] == "welcome"
        await raw.send(b'{"type":"ping"}\n')
        assert await raw.line() == {"type": "pong"}
        began = time.monotonic()
        timeout = await raw.next_of("error", timeout=5)  # no ping for two intervals (0.8 s)
        assert timeout["code"] == "timeout"
        assert await raw.closed()
        assert time.monotonic() - began < 3

    run(scenario())


def test_every_kind_of_bad_ticket_gets_the_same_answer(pool: Pool) -> None:
    async def scenario() -> None:
        dispatch = pool.dispatch()
        good = await dispatch.allocate("door")
        mine = await Raw.connect(good.port)
        assert (await mine.hello(good))["type"] == "welcome"
        other = await dispatch.allocate("elsewhere")
        while other.server == good.server:  # a ticket for another server
            other = await dispatch.allocate("elsewhere")
        payload, mac = (await dispatch.allocate("forger")).ticket.split(".")
        cases: dict[str, object] = {
            "replayed": good.ticket,
            "other server": other.ticket,
            "forged mac": f"{payload}.{mac[::-1]}",
            "forged payload": f"{payload[:-4]}AAAA.{mac}",
            "garbage": "not-a-ticket",
            "number": 7,
            "missing": None,
            "huge": "x" * 50_000,
        }
        answers = {}
        for name, ticket in cases.items():
            raw = await Raw.connect(good.port)
            await raw.send(hello_line(ticket))
            answers[name] = await raw.raw_line()
            assert await raw.closed(), name
        assert set(answers.values()) == {
            json.dumps(HELLO_REFUSED, separators=(",", ":")).encode() + b"\n"
        }
        await mine.send(b'{"type":"ping"}\n')
        assert await mine.line() == {"type": "pong"}  # the server is unharmed
        answering(pool, good.server, lambda x: x["refused"] >= len(cases))
        mine.close()
        await dispatch.aclose()

    run(scenario())


def test_an_expired_ticket_is_refused(pool: Pool) -> None:
    async def scenario() -> None:
        dispatch = pool.dispatch()
        seat = await dispatch.allocate("late")
        await dispatch.aclose()
        claims = json.loads(_unb64(seat.ticket.split(".")[0]))
        wait = claims["exp"] - time.time() + 0.2
        assert 0 < wait < 4
        await asyncio.sleep(wait)
        raw = await Raw.connect(seat.port)
        assert await raw.hello(seat) == HELLO_REFUSED
        assert await raw.closed()

    run(scenario(), timeout=30)


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def hostile_seat(pool: Pool) -> tuple[Raw, Seat]:
    dispatch = pool.dispatch()
    seat = await dispatch.allocate("hostile")
    await dispatch.aclose()
    raw = await Raw.connect(seat.port)
    assert (await raw.hello(seat))["type"] == "welcome"
    return raw, seat


def test_hostile_lines_are_dropped_and_the_others_chat_on(pool: Pool) -> None:
    quiet(pool)

    async def scenario() -> None:
        ann, bob = await joined(pool, 2, name="h")
        raw, seat = await hostile_seat(pool)
        assert seat.server == ann.welcome["server"]  # packed into the same room
        nested = b"[" * 100_000 + b"]" * 100_000
        attacks = [
            (b"this is not json\n", "bad_line"),
            (b"\x00\xff\xfe\x80binary\xc3\x28\n", "bad_line"),
            (b"x" * (2 << 20) + b"\n", "too_long"),  # a 2 MiB line, bound 64 KiB
            (b'{"type":"message","text":' + nested[:30_000] + b"}\n", "bad_line"),
            (b'{"type":"message","text":{"a":1}}\n', "bad_message"),
            (b'{"type":"shutdown"}\n', "unknown_type"),
            (b"[1,2,3]\n", "bad_line"),
        ]
        for data, code in attacks:
            await raw.send(data)
            assert (await raw.next_of("error"))["code"] == code
            await ann.send("still fine")  # the room works between attacks
            assert (await bob.wait_for("message", 5))["text"] == "still fine"
        # many bad lines in a row end the hostile connection, nobody else's
        await raw.send(b"nope\n" * 40)
        assert await raw.closed()
        await bob.send("and now?")
        assert (await ann.wait_for("message", 5))["text"] == "and now?"
        answering(pool, seat.server, lambda x: x["dropped_lines"] >= 12)
        await leave([ann, bob])

    run(scenario())


def test_a_slow_drip_and_a_silent_hello_are_cut_off(pool: Pool) -> None:
    quiet(pool)

    async def scenario() -> None:
        ann, bob = await joined(pool, 2, name="d")
        drip, seat = await hostile_seat(pool)
        silent = await Raw.connect(seat.port)  # never says hello
        began = time.monotonic()
        for byte in b'{"type":"ping", "padding": "................"':
            try:  # one byte at a time, never a whole line
                await drip.send(bytes([byte]))
            except ConnectionError:
                break  # cut off
            await ann.send("tick")
            assert (await bob.wait_for("message", 5))["text"] == "tick"
            await asyncio.sleep(0.1)
        assert await drip.closed(timeout=5)
        assert await silent.closed(timeout=5)
        assert time.monotonic() - began < 8
        await leave([ann, bob])

    run(scenario())


def test_a_hello_must_come_first(pool: Pool) -> None:
    async def scenario() -> None:
        dispatch = pool.dispatch()
        seat = await dispatch.allocate("eager")
        await dispatch.aclose()
        raw = await Raw.connect(seat.port)
        await raw.send(b'{"type":"message","text":"hi"}\n')
        assert (await raw.line())["code"] == "hello_first"
        assert await raw.closed()

    run(scenario())
