"""Token storage and verification."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.core.errors import AuthError
from homekeep.core.tokens import TokenStore


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "core.sqlite")


def test_tokens_are_stored_hashed_and_verified(store: TokenStore, tmp_path: Path) -> None:
    secret = store.create("phone", ["images", "music"], ["images", "music", "sync"])
    record = store.verify(secret)
    assert record.name == "phone"
    assert record.allows("images")
    assert not record.allows("sync")
    raw = sqlite3.connect(tmp_path / "core.sqlite").execute("SELECT hash FROM tokens").fetchone()
    assert secret not in raw[0]
    assert store.list()[0].last_used_at is not None


def test_all_scope_allows_every_area(store: TokenStore) -> None:
    secret = store.create("admin", ["all"], ["images"])
    assert store.verify(secret).allows("anything")


def test_revoked_token_is_refused_and_name_can_be_reused(store: TokenStore) -> None:
    old = store.create("laptop", ["all"], [])
    store.revoke("laptop")
    with pytest.raises(AuthError, match="revoked"):
        store.verify(old)
    new = store.create("laptop", ["all"], [])
    assert store.verify(new).name == "laptop"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_strings_never_verify(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    store = _shared_store(tmp_path_factory)
    with pytest.raises(AuthError):
        store.verify(text)


_STORES: dict[str, TokenStore] = {}


def _shared_store(factory: pytest.TempPathFactory) -> TokenStore:
    if "s" not in _STORES:
        _STORES["s"] = TokenStore(factory.mktemp("tokens") / "core.sqlite")
        _STORES["s"].create("real", ["all"], [])
    return _STORES["s"]
