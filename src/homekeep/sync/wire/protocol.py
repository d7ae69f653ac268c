"""The sync wire protocol v1: its version, the fixed chunking parameters, path and name rules.

Changing anything here changes what a chunk id means, so it needs a new protocol version.
"""

from __future__ import annotations

import json
import re
from typing import Literal, Protocol

from homekeep.core.errors import Forbidden, InvalidInput
from homekeep.sync.wire.folder import reserved

VERSION = 1
PREFIX = f"/v{VERSION}"

# FastCDC 2020 parameters, frozen for protocol v1: chunk ids are BLAKE3 of chunk bytes
# cut with exactly these settings, so client and server must agree on them.
CHUNK_AVG = 32 * 1024
CHUNK_MIN = 8 * 1024
CHUNK_MAX = 128 * 1024
CHUNK_NC: Literal[1] = 1

HASH_BYTES = 32
_CLIENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


def check_client(name: str) -> str:
    """Return a valid client name, or raise InvalidInput."""
    if not _CLIENT_RE.match(name):
        raise InvalidInput(
            f"invalid client name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "not starting with '.'"
        )
    return name


class Grant(Protocol):
    """What a request's credentials say (a token, or a logged-in caller)."""

    @property
    def name(self) -> str: ...

    def allows(self, area: str) -> bool: ...

    def acts_for(self, client: str) -> bool: ...


def check_access(token: Grant, client: str) -> str:
    """Return ``client`` if ``token`` may sync as it (scope sync, bound to it), else raise.

    Without this, any sync token could read every client's manifest and change its files.
    """
    check_client(client)
    if not token.allows("sync"):
        raise Forbidden(f"token {token.name!r} has no access to sync; create one with --scope sync")
    if not token.acts_for(client):
        raise Forbidden(
            f"token {token.name!r} may not act as client {client!r}; on the server, create "
            f"a token for it: 'homekeep token create {client} --scope sync' (or any name "
            f"with '--client {client}')"
        )
    return client


def check_path(path: str) -> str:
    """Return a client-relative path if it stays inside the client's folder, else raise.

    Refused: empty, absolute, NUL, backslashes, '.', '..' or empty components, names
    longer than the filesystem allows, and the names a shared folder keeps for itself.
    """
    if not isinstance(path, str) or not path:
        raise InvalidInput("empty path")
    if "\x00" in path:
        raise InvalidInput("path contains a NUL byte")
    if "\\" in path:
        raise InvalidInput(f"path {path!r} contains a backslash; use '/' between names")
    if path.startswith("/"):
        raise InvalidInput(f"path {path!r} is absolute; send paths relative to the folder")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"path {path!r} is not valid UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidInput(f"path is longer than {MAX_PATH_BYTES} bytes")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidInput(f"path {path!r} has an empty, '.' or '..' component")
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidInput(f"a name in {path!r} is longer than {MAX_NAME_BYTES} bytes")
    if reserved(path):
        raise InvalidInput(f"path {path!r} is one of the shared folder's own files; not synced")
    return path


def load_json(data: bytes | bytearray, what: str) -> object:
    """Parse JSON a client sent; garbage, and nesting too deep to parse, raise InvalidInput.

    The decoder recurses once per level: ``[`` a thousand deep runs out of stack
    (RecursionError) long before any size limit, and must not become a 500.
    """
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{what} is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{what} is nested too deeply") from exc


_HASH_RE = re.compile(r"[0-9a-fA-F]{64}")


def check_hash(value: str) -> str:
    """Return a lowercase hex BLAKE3 id, or raise InvalidInput (it may name a file)."""
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value):
        raise InvalidInput("a content id must be 64 hex digits")
    return value.lower()
