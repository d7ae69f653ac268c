"""The data port: big new files streamed over a plain TCP (or TLS) socket, not HTTP.

Through the HTTP stack a body costs the server about 3 s of CPU per GiB (every 256 KiB
part goes through the event loop and the ASGI layers); a socket read straight into a
buffer and written to the temp file costs a tenth of that, and the client sends with
``sendfile``. Everything else still goes over HTTP.

One upload per connection. The client sends one JSON line::

    {"token": ..., "client": ..., "path": ..., "size": N, "mode": ..., "mtime_ns": ...,
     "hash": ...}

and waits for one JSON line: ``{"status": "continue"}`` once the header is checked
(token, names, path), else ``{"error": {"status": 4xx, "message": ...}}``. It then sends
exactly ``size`` bytes and reads the last line: the same answer as ``PUT /files``
(``{"status": "done", ...}``) or an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homekeep.core.errors import (
    AuthError,
    Forbidden,
    HomekeepError,
    InvalidInput,
    Unavailable,
)
from homekeep.core.tokens import TokenStore
from homekeep.sync import fsops
from homekeep.sync.chunking import Digest, ListMismatch, ListVerifier
from homekeep.sync.protocol import Chunks, check_client, check_hash, check_path
from homekeep.sync.store import FileSpec, ServerStore

log = logging.getLogger(__name__)

MAX_HEADER = 16 * 1024
IDLE_TIMEOUT = 60.0  # a connection that sends nothing for this long is dropped
HEADER_TIMEOUT = 10.0  # the opening line must be whole within this
MAX_CONNECTIONS = 8
READ_BLOCK = 1 << 20
WRITEBACK_STEP = 8 << 20
MODE_LIMIT = 0o7777


class DataHeader(BaseModel):
    """The line that opens an upload on the data port."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=512)
    client: str = Field(max_length=64)
    path: str = Field(max_length=4096)
    size: int = Field(ge=0, le=1 << 50)
    mode: int = Field(ge=0, le=MODE_LIMIT)
    mtime_ns: int = Field(ge=-(1 << 62), le=1 << 62)
    hash: str = Field(max_length=64)


class DataPort:
    """Accepts uploads on a listening socket, a thread per connection (at most eight)."""

    def __init__(
        self,
        store: ServerStore,
        tokens: TokenStore,
        sock: socket.socket,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.sock = sock
        self.tls = tls
        self.port = int(sock.getsockname()[1])
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._stopping = threading.Event()
        # a fixed set of threads, reused: each keeps one SQLite connection per database,
        # where a thread per connection would leave one behind for every client that came
        self._workers = ThreadPoolExecutor(MAX_CONNECTIONS, thread_name_prefix="dataport")
        # connections being served, for stop(); the workers add and remove, stop() reads
        self._open: dict[int, socket.socket] = {}  # guarded by _guard
        self._guard = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="dataport", daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, then give uploads in flight ``timeout`` seconds to finish."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._acceptor.join(timeout)
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._guard:  # still going: cut them off; the client sends again next pass
            for conn in self._open.values():
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._workers.shutdown(wait=True, cancel_futures=True)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # out of file descriptors, say: do not spin
                continue
            if not self._slots.acquire(blocking=False):
                if self.tls is None:  # a TLS client could not read a plain answer
                    _reply(conn, _error(Unavailable("the data port is busy; retry")))
                conn.close()
                continue
            self._workers.submit(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        key = threading.get_ident()
        with self._guard:
            self._open[key] = conn
        try:
            conn.settimeout(HEADER_TIMEOUT)  # the handshake too: a slot is not held long
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                with self._guard:
                    self._open[key] = conn
            answer = self._upload(conn)
        except HomekeepError as exc:
            answer = _error(exc)
        except (OSError, ssl.SSLError) as exc:
            log.info("data port connection dropped: %s", exc)
            answer = None
        except Exception:
            log.exception("data port upload failed")
            answer = {"error": {"status": 500, "message": "internal error; see the server log"}}
        finally:
            self._slots.release()
            with self._guard:
                self._open.pop(key, None)
        try:
            if answer is not None:
                _reply(conn, answer)
        finally:
            conn.close()

    def _upload(self, conn: socket.socket) -> dict[str, Any]:
        header, rest = _read_header(conn)
        token = self.tokens.verify(header.token)
        if not token.allows("sync"):
            raise Forbidden("this token may not write to sync; create one with --scope sync")
        check_client(header.client)
        spec = FileSpec(
            check_path(header.path),
            header.size,
            header.mode,
            header.mtime_ns,
            check_hash(header.hash),
            None,
        )
        if len(rest) > spec.size:
            raise InvalidInput(f"upload of {spec.path!r} is longer than its size")
        expected = self.store.expected_chunks(header.client, spec)
        _reply(conn, {"status": "continue"})
        tmp = self.store.new_upload()
        try:
            digest = _receive(conn, tmp, rest, spec.size, expected)
            self.store.commit_upload(header.client, spec, tmp, spec.size, digest)
        finally:
            tmp.unlink(missing_ok=True)
        return {"status": "done", "via": "upload", "data_bytes": spec.size}


def _read_header(conn: socket.socket) -> tuple[DataHeader, bytes]:
    """Read the JSON line that opens an upload; return it and the body bytes after it.

    The whole line must arrive within HEADER_TIMEOUT: a client trickling bytes cannot
    hold one of the eight slots for long.
    """
    data = bytearray()
    deadline = time.monotonic() + HEADER_TIMEOUT
    while b"\n" not in data:
        if len(data) > MAX_HEADER:
            raise InvalidInput(f"the upload header is longer than {MAX_HEADER} bytes")
        left = deadline - time.monotonic()
        if left <= 0:
            raise InvalidInput(f"the upload header did not arrive within {HEADER_TIMEOUT:.0f} s")
        conn.settimeout(left)
        try:
            part = conn.recv(4096)
        except TimeoutError as exc:
            raise InvalidInput(
                f"the upload header did not arrive within {HEADER_TIMEOUT:.0f} s"
            ) from exc
        if not part:
            raise InvalidInput("the connection closed before the upload header ended")
        data += part
    conn.settimeout(IDLE_TIMEOUT)
    line, _, rest = bytes(data).partition(b"\n")
    if len(line) > MAX_HEADER:
        raise InvalidInput(f"the upload header is longer than {MAX_HEADER} bytes")
    try:
        payload = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the upload header is not JSON: {exc}") from exc
    try:
        return DataHeader.model_validate(payload), rest
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "header"
        if where == "token":
            raise AuthError("missing or malformed token") from exc
        raise InvalidInput(f"invalid upload header at {where}: {first.get('msg')}") from exc


def _receive(
    conn: socket.socket, tmp: Path, first: bytes, size: int, expected: Chunks | None
) -> Digest | None:
    """Write ``size`` bytes from ``conn`` to ``tmp``, hashed along ``expected`` as they come.

    Returns None when there is no list, or the data left it: commit_upload then cuts
    and hashes the file itself.
    """
    verifier = ListVerifier(expected) if expected is not None else None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        got = flushed = 0
        buf = memoryview(bytearray(READ_BLOCK))
        pending = memoryview(first)
        while True:
            if pending:
                _write_all(fd, pending)
                got += len(pending)
                if verifier is not None:
                    try:
                        verifier.update(pending)
                    except ListMismatch:
                        verifier = None
                if got - flushed >= WRITEBACK_STEP:
                    fsops.start_writeback(fd, flushed, got - flushed)
                    flushed = got
            if got >= size:
                break
            n = conn.recv_into(buf, min(READ_BLOCK, size - got))
            if not n:
                raise InvalidInput("the connection closed before the whole file arrived")
            pending = buf[:n]
    finally:
        os.close(fd)
    if verifier is None:
        return None
    try:
        return verifier.done()
    except ListMismatch:
        return None


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _error(exc: HomekeepError) -> dict[str, Any]:
    return {"error": {"status": exc.status_code, "message": exc.message}}


def _reply(conn: socket.socket, answer: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(answer).encode() + b"\n")
