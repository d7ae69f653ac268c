"""Token storage and verification."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.core import tokens
from homekeep.core.db import Database
from homekeep.core.errors import AuthError, UsageError
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


def test_a_token_acts_for_its_own_name_unless_bound_to_clients(store: TokenStore) -> None:
    own = store.verify(store.create("laptop", ["sync"], ["sync"]))
    assert own.acts_for("laptop")
    assert not own.acts_for("desktop")
    bound = store.verify(store.create("family", ["sync"], ["sync"], ["mum", "dad"]))
    assert bound.clients == ("mum", "dad")
    assert bound.acts_for("mum")
    assert bound.acts_for("dad")
    assert not bound.acts_for("family")
    anyone = store.verify(store.create("admin", ["all"], ["sync"], ["*"]))
    assert anyone.acts_for("mum")
    assert anyone.acts_for("whoever")


@pytest.mark.parametrize("client", ["", "..", ".x", "a b", "a/b", "*x", "a" * 65])
def test_bad_client_bindings_are_refused(store: TokenStore, client: str) -> None:
    with pytest.raises(UsageError, match="--client"):
        store.create("x", ["sync"], ["sync"], [client])
    assert store.list() == []


def test_tokens_made_before_bindings_keep_working_as_their_own_name(tmp_path: Path) -> None:
    path = tmp_path / "core.sqlite"
    old = Database(path, area="core", migrations=tokens.MIGRATIONS[:1])
    secret = "hk_0123456789ab_" + "A" * 43
    old.execute(
        "INSERT INTO tokens (id, name, hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
        ("0123456789ab", "laptop", hashlib.sha256(secret.encode()).hexdigest(), '["sync"]', "x"),
    )
    old.close()
    record = TokenStore(path).verify(secret)
    assert record.clients == ()
    assert record.acts_for("laptop")
    assert not record.acts_for("desktop")
