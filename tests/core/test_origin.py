"""Browser Origin checks: normal forms, own origins, what is let in."""

from __future__ import annotations

import pytest

from homekeep.core.origin import normalize, origin_allowed, own_origins


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://localhost:8080", "http://localhost:8080"),
        ("HTTP://LocalHost:8080/", "http://localhost:8080"),
        ("https://nas.example:443", "https://nas.example"),
        ("http://nas.example:80", "http://nas.example"),
        ("http://[::1]:1800", "http://[::1]:1800"),
        ("null", None),
        ("file://", None),
        ("ws://localhost:1800", None),
        ("http://user@localhost:8080", None),
        ("http://localhost:8080/page", None),
        ("http://localhost:99999", None),
        ("http://", None),
        ("", None),
    ],
)
def test_normalize(given: str, expected: str | None) -> None:
    assert normalize(given) == expected


def test_own_origins_of_loopback_name_every_loopback_spelling() -> None:
    assert own_origins("127.0.0.1", 1800, schemes=("http",)) == {
        "http://localhost:1800",
        "http://127.0.0.1:1800",
        "http://[::1]:1800",
    }
    assert own_origins("nas.lan", 80) == {"http://nas.lan", "https://nas.lan:80"}


def test_origin_allowed() -> None:
    allowed = own_origins("localhost", 1800)
    assert origin_allowed(None, allowed)  # not a browser
    assert origin_allowed("http://127.0.0.1:1800", allowed)
    assert not origin_allowed("http://evil.example", allowed)
    assert not origin_allowed("http://127.0.0.1:1801", allowed)
    assert not origin_allowed("null", allowed)
    assert not origin_allowed("http://localhost.evil.example:1800", allowed)
