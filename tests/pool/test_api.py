"""The HTTP API: allocations, servers, events; bad input answered in the one error shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.core.test_server import assert_error
from tests.pool.conftest import Pool
from tests.support import create_token


def post(pool: Pool, body: Any = None, **kwargs: Any) -> httpx.Response:
    headers = {**pool.headers, **kwargs.pop("headers", {})}
    if body is None:
        return httpx.post(f"{pool.url}/api/pool/allocate", headers=headers, **kwargs)
    return httpx.post(f"{pool.url}/api/pool/allocate", headers=headers, json=body, **kwargs)


def test_an_allocation_says_where_to_go_and_holds_a_ticket(pool: Pool) -> None:
    answer = post(pool, {"name": "Zoë the 2nd"})
    assert answer.status_code == 200
    seat = answer.json()
    assert set(seat) == {
        "host",
        "port",
        "ticket",
        "server",
        "client",
        "name",
        "expires_at",
        "tls",
        "ping_interval_seconds",
    }
    assert seat["host"] == "127.0.0.1"
    assert seat["name"] == "Zoë the 2nd"
    assert seat["tls"] is False
    assert post(pool).json()["name"] == "tester"  # no body: the token's name


def test_servers_and_one_server_and_events(pool: Pool) -> None:
    status = pool.wait_until(lambda s: s["pool"]["ready"] >= 1, what="a ready server")
    assert status["pool"]["state"] == "running"
    first = status["servers"][0]
    answer = httpx.get(f"{pool.url}/api/pool/servers/{first['id']}", headers=pool.headers)
    assert answer.json()["port"] == first["port"]
    events = httpx.get(f"{pool.url}/api/pool/events?limit=5", headers=pool.headers).json()
    assert 1 <= len(events) <= 5
    assert {"id", "at", "kind", "server", "detail"} == set(events[0])


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"not json", "application/json", 422, "invalid_input"),
        (b"[1, 2]", "application/json", 422, "invalid_input"),
        (b'{"name": 5}', "application/json", 422, "invalid_input"),
        (b'{"name": ""}', "application/json", 422, "invalid_input"),
        (b'{"name": "   "}', "application/json", 422, "invalid_input"),
        (b'{"name": "' + b"x" * 41 + b'"}', "application/json", 422, "invalid_input"),
        (b'{"name": "a\\u0000b"}', "application/json", 422, "invalid_input"),
        (b'{"name": "a\\u001b[2Jb"}', "application/json", 422, "invalid_input"),
        (b'{"name": "ok", "admin": true}', "application/json", 422, "invalid_input"),
        (b'{"name": ' + b"[" * 2000 + b"]" * 2000 + b"}", "application/json", 422, "invalid_input"),
        (b"\xff\xfe\x00", "application/json", 422, "invalid_input"),
        (b'{"name": "' + b"x" * (2 << 20) + b'"}', "application/json", 413, "payload_too_large"),
        (b"{}", "text/plain", 200, ""),
    ],
)
def test_bad_allocation_bodies_are_refused_clearly(
    pool: Pool, body: bytes, content_type: str, status: int, code: str
) -> None:
    answer = post(pool, content=body, headers={"content-type": content_type})
    if status == 200:
        assert answer.json()["name"] == "tester"
    else:
        assert_error(answer, status, code)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/servers/s999", 404, "not_found"),
        ("/servers/" + "x" * 300, 404, "not_found"),
        ("/servers/%00", 404, "not_found"),
        ("/events?limit=0", 422, "invalid_input"),
        ("/events?limit=100000", 422, "invalid_input"),
        ("/events?limit=abc", 422, "invalid_input"),
        ("/events?limit=-1", 422, "invalid_input"),
        ("/events?limit=1.5", 422, "invalid_input"),
        ("/events?limit=" + "9" * 5000, 422, "invalid_input"),
        ("/nothing", 404, "not_found"),
    ],
)
def test_bad_paths_and_queries_are_refused_clearly(
    pool: Pool, path: str, status: int, code: str
) -> None:
    answer = httpx.get(f"{pool.url}/api/pool{path}", headers=pool.headers)
    assert_error(answer, status, code)


def test_methods_that_do_not_exist_get_405(pool: Pool) -> None:
    assert_error(
        httpx.get(f"{pool.url}/api/pool/allocate", headers=pool.headers), 405, "method_not_allowed"
    )
    assert_error(
        httpx.delete(f"{pool.url}/api/pool/servers", headers=pool.headers),
        405,
        "method_not_allowed",
    )


@pytest.mark.parametrize("path", ["/allocate", "/servers", "/servers/s1", "/events"])
def test_every_route_needs_a_pool_token(pool: Pool, path: str) -> None:
    method = "POST" if path == "/allocate" else "GET"
    url = f"{pool.url}/api/pool{path}"
    assert_error(httpx.request(method, url), 401, "unauthorized")
    assert_error(
        httpx.request(method, url, headers={"Authorization": "Bearer hk_000000000000_" + "a" * 43}),
        401,
        "unauthorized",
    )
    assert_error(
        httpx.request(method, url, headers={"Authorization": "Basic abc"}), 401, "unauthorized"
    )
    other = create_token(
        pool.data_dir, f"images-only-{path.strip('/').replace('/', '-')}", "images"
    )
    assert_error(
        httpx.request(method, url, headers={"Authorization": f"Bearer {other}"}), 403, "forbidden"
    )


def test_the_page_is_served(pool: Pool) -> None:
    answer = httpx.get(f"{pool.url}/pool/")
    assert answer.status_code == 200
    assert "<title>Pool · homekeep</title>" in answer.text
    assert "/api/pool/servers" in answer.text
