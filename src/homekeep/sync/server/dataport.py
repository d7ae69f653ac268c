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

Until its header is in and its token checked, a connection costs one socket watched by
the accepting thread, nothing more: the TLS handshake and the header must be done within
HEADER_TIMEOUT, one address may have PENDING_PER_ADDRESS such connections open (the rest
are answered 429 and closed) and all addresses MAX_PENDING. Only an authenticated upload
takes one of the MAX_UPLOADS slots, so idle connections cannot keep real clients out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homekeep.core.errors import (
    AuthError,
    HomekeepError,
    InvalidInput,
    RateLimited,
    Unavailable,
)
from homekeep.core.tokens import TokenStore
from homekeep.sync.server import fsops
from homekeep.sync.server.apply import Upload, apply
from homekeep.sync.server.batch import FileSpec
from homekeep.sync.server.target import Target
from homekeep.sync.server.transfers import live
from homekeep.sync.wire.chunking import Digest, ListMismatch, ListVerifier
from homekeep.sync.wire.chunklist import Chunks
from homekeep.sync.wire.protocol import check_access, check_hash, check_path, load_json

log = logging.getLogger(__name__)

MAX_HEADER = 16 * 1024
IDLE_TIMEOUT = 60.0  # a connection that sends nothing for this long is dropped
HEADER_TIMEOUT = 10.0  # the TLS handshake and the opening line must be done within this
MAX_UPLOADS = 8  # authenticated uploads at once; more get a 503 line (busy: use HTTP)
MAX_PENDING = 256  # connections whose header is not in and checked yet
PENDING_PER_ADDRESS = 8  # ... of them from one address
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


@dataclass(eq=False)
class _Pending:
    """A connection whose header is still arriving (owned by the accepting thread)."""

    sock: socket.socket
    address: str
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    shaken: bool = False  # TLS: the handshake is done
    writing: bool = False  # TLS: the handshake waits to write, not to read


class DataPort:
    """Accepts uploads on a listening socket.

    One thread watches the listening socket and every connection whose header is still
    arriving; one checks complete headers (token, client, path); eight run uploads.
    """

    def __init__(
        self,
        target: Target,
        tokens: TokenStore,
        sock: socket.socket,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self.tokens = tokens
        self.sock = sock
        self.tls = tls
        self.port = int(sock.getsockname()[1])
        self._slots = threading.BoundedSemaphore(MAX_UPLOADS)
        self._stopping = threading.Event()
        # fixed sets of threads, reused: each keeps one SQLite connection per database,
        # where a thread per connection would leave one behind for every client that came
        self._workers = ThreadPoolExecutor(MAX_UPLOADS, thread_name_prefix="dataport")
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="dataport-check")
        # guarded by _guard: connections being served (for stop()), and those not yet
        # checked, in all and per address (the accepting thread adds, the checker removes)
        self._guard = threading.Lock()
        self._open: dict[int, socket.socket] = {}
        self._unchecked: set[socket.socket] = set()
        self._per_address: Counter[str] = Counter()
        self._acceptor = threading.Thread(target=self._accept, name="dataport", daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, then give uploads in flight ``timeout`` seconds to finish."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(timeout)
        self.sock.close()
        self._checker.shutdown(wait=True, cancel_futures=True)
        with self._guard:  # headers that were never checked: nobody will now
            for conn in self._unchecked:
                conn.close()
            self._unchecked.clear()
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._guard:  # still going: cut them off; the client sends again next pass
            for conn in self._open.values():
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._workers.shutdown(wait=True, cancel_futures=True)

    # -- the accepting thread: connections until their header is in --------------------

    def _accept(self) -> None:
        pending: dict[socket.socket, _Pending] = {}
        with selectors.DefaultSelector() as watch:
            self.sock.setblocking(False)
            watch.register(self.sock, selectors.EVENT_READ)
            try:
                while not self._stopping.is_set():
                    soonest = min((p.deadline for p in pending.values()), default=None)
                    wait = 1.0 if soonest is None else soonest - time.monotonic()
                    for key, _ in watch.select(min(max(wait, 0.0), 1.0)):
                        if key.data is None:  # the listening socket
                            self._admit(watch, pending)
                        else:
                            self._advance(watch, pending, key.data)
                    now = time.monotonic()
                    for late in [p for p in pending.values() if p.deadline <= now]:
                        self._drop(watch, pending, late)
                        self._refuse(
                            late,
                            InvalidInput(
                                f"the upload header did not arrive within {HEADER_TIMEOUT:.0f} s"
                            ),
                        )
            finally:
                for left in list(pending.values()):
                    self._drop(watch, pending, left)
                    left.sock.close()

    def _admit(self, watch: selectors.BaseSelector, pending: dict[socket.socket, _Pending]) -> None:
        """Accept the connections waiting, within the limits of unchecked ones."""
        for _ in range(64):  # then the others get their turn
            try:
                conn, peer = self.sock.accept()
            except BlockingIOError:
                return
            except OSError:
                if not self._stopping.is_set():
                    time.sleep(0.05)  # out of file descriptors, say: do not spin
                return
            address = str(peer[0])
            with self._guard:
                crowded = self._per_address[address] >= PENDING_PER_ADDRESS
                full = len(self._unchecked) >= MAX_PENDING
                if not crowded and not full:
                    self._per_address[address] += 1
                    self._unchecked.add(conn)
            if crowded or full:
                if self.tls is None:  # a TLS client could not read a plain answer
                    conn.setblocking(True)
                    conn.settimeout(1.0)
                    reason = f"from {address}" if crowded else "in all"
                    _reply(conn, _error(RateLimited(f"too many connections {reason}; retry")))
                conn.close()
                continue
            conn.setblocking(False)
            if self.tls is not None:
                plain = conn
                conn = self.tls.wrap_socket(plain, server_side=True, do_handshake_on_connect=False)
                with self._guard:  # the wrapped socket replaces the plain one
                    self._unchecked.discard(plain)
                    self._unchecked.add(conn)
            entry = _Pending(conn, address, time.monotonic() + HEADER_TIMEOUT)
            pending[conn] = entry
            watch.register(conn, selectors.EVENT_READ, entry)

    def _advance(
        self,
        watch: selectors.BaseSelector,
        pending: dict[socket.socket, _Pending],
        entry: _Pending,
    ) -> None:
        """Take what a connection has sent so far; pass a whole header on to be checked."""
        sock = entry.sock
        try:
            if isinstance(sock, ssl.SSLSocket) and not entry.shaken:
                sock.do_handshake()
                entry.shaken = True
            while b"\n" not in entry.data and len(entry.data) <= MAX_HEADER:
                part = sock.recv(4096)
                if not part:
                    raise ConnectionResetError("closed before the upload header ended")
                entry.data += part
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    break
        except (ssl.SSLWantReadError, BlockingIOError):
            self._wait_for(watch, entry, writing=False)
            return
        except ssl.SSLWantWriteError:
            self._wait_for(watch, entry, writing=True)
            return
        except (OSError, ssl.SSLError) as exc:
            log.info("data port connection dropped before its header: %s", exc)
            self._drop(watch, pending, entry)
            self._forget(entry)
            sock.close()
            return
        self._wait_for(watch, entry, writing=False)
        if b"\n" in entry.data or len(entry.data) > MAX_HEADER:
            self._drop(watch, pending, entry)
            self._checker.submit(self._check, entry)

    @staticmethod
    def _wait_for(watch: selectors.BaseSelector, entry: _Pending, *, writing: bool) -> None:
        if entry.writing != writing:
            entry.writing = writing
            events = selectors.EVENT_WRITE if writing else selectors.EVENT_READ
            watch.modify(entry.sock, events, entry)

    @staticmethod
    def _drop(
        watch: selectors.BaseSelector, pending: dict[socket.socket, _Pending], entry: _Pending
    ) -> None:
        """Stop watching a connection (it is closed, or moves on to the checker)."""
        pending.pop(entry.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            watch.unregister(entry.sock)

    def _forget(self, entry: _Pending) -> None:
        """A connection is checked (or gone): it no longer counts against the limits."""
        with self._guard:
            self._unchecked.discard(entry.sock)
            self._per_address[entry.address] -= 1
            if self._per_address[entry.address] <= 0:
                del self._per_address[entry.address]

    def _refuse(self, entry: _Pending, exc: HomekeepError) -> None:
        """Answer an error (where the client can read one) and close."""
        self._forget(entry)
        if self.tls is None or entry.shaken:
            with contextlib.suppress(OSError, ValueError):
                entry.sock.setblocking(True)
                entry.sock.settimeout(1.0)
                _reply(entry.sock, _error(exc))
        entry.sock.close()

    # -- the checking thread: a whole header, then an upload slot -----------------------

    def _check(self, entry: _Pending) -> None:
        try:
            entry.sock.setblocking(True)
            entry.sock.settimeout(IDLE_TIMEOUT)
            header, rest = _parse_header(bytes(entry.data))
            token = self.tokens.verify(header.token)
            check_access(token, header.client)
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
            if not self._slots.acquire(blocking=False):
                raise Unavailable("the data port is busy; retry")
        except HomekeepError as exc:
            self._refuse(entry, exc)
            return
        except Exception:
            log.exception("data port header check failed")
            self._refuse(entry, HomekeepError("internal error; see the server log"))
            return
        self._forget(entry)
        device = (header.client, token.name, entry.address)
        contact = live(self.target).contacts.note(*device)
        if contact is not None:
            live(self.target).contacts.write(contact)
        self._workers.submit(self._serve, entry.sock, device, spec, rest)

    # -- the upload threads ---------------------------------------------------------------

    def _serve(
        self, conn: socket.socket, device: tuple[str, str, str], spec: FileSpec, rest: bytes
    ) -> None:
        """Run one upload for ``device`` (client, token name, address) and answer it."""
        key = threading.get_ident()
        with self._guard:
            self._open[key] = conn
        try:
            answer: dict[str, Any] | None = self._upload(conn, device, spec, rest)
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

    def _upload(
        self, conn: socket.socket, device: tuple[str, str, str], spec: FileSpec, rest: bytes
    ) -> dict[str, Any]:
        client = device[0]
        expected = self.target.chunks.pending_list(client, spec.hash, spec.size)
        _reply(conn, {"status": "continue"})
        tmp = self.target.temp_name()
        transfers = live(self.target).transfers
        try:
            with transfers.tracking(*device, spec.path, spec.size, "data port") as progress:
                digest = _receive(conn, tmp, rest, spec.size, expected, progress.update)
                (result,) = apply(self.target, client, [Upload(spec, tmp, spec.size, digest)])
        finally:
            tmp.unlink(missing_ok=True)
        return result.as_dict()


def _parse_header(data: bytes) -> tuple[DataHeader, bytes]:
    """The JSON line that opens an upload, and the body bytes that came after it."""
    line, newline, rest = data.partition(b"\n")
    if len(line) > MAX_HEADER or not newline:
        raise InvalidInput(f"the upload header is longer than {MAX_HEADER} bytes")
    payload = load_json(line, "the upload header")
    try:
        return DataHeader.model_validate(payload), rest
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "header"
        if where == "token":
            raise AuthError("missing or malformed token") from exc
        raise InvalidInput(f"invalid upload header at {where}: {first.get('msg')}") from exc


def _receive(
    conn: socket.socket,
    tmp: Path,
    first: bytes,
    size: int,
    expected: Chunks | None,
    progress: Callable[[int], None] | None = None,
) -> Digest | None:
    """Write ``size`` bytes from ``conn`` to ``tmp``, hashed along ``expected`` as they come.

    Returns None when there is no list, or the data left it: check_upload then cuts
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
                if progress is not None:
                    progress(got)
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
