"""The client's connection to a sync server: TLS (CA file or pinned certificate), auth, errors."""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from homekeep.core.errors import (
    AuthError,
    HomekeepError,
    InvalidInput,
    Unavailable,
    UsageError,
    error_class_for,
    error_message,
)
from homekeep.sync.wire.chunklist import ListFile
from homekeep.sync.wire.compression import BODY_MIN, deflate
from homekeep.sync.wire.protocol import PREFIX, VERSION

log = logging.getLogger(__name__)


class Offline(Unavailable):
    """The server cannot be reached, or answered that it cannot serve now: retry later."""


@dataclass
class Counters:
    """Bytes that crossed the wire in request and response bodies."""

    sent: int = 0
    received: int = 0
    data: int = 0  # chunk payload bytes, compressed as sent
    requests: int = 0


def fingerprint_of(der: bytes) -> str:
    """Return the SHA-256 fingerprint of a DER certificate as colon-separated hex."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _normal_fp(text: str) -> str:
    clean = text.replace(":", "").replace(" ", "").lower()
    if clean.startswith("sha256/"):
        clean = clean[7:]
    if len(clean) != 64:
        raise UsageError("--fingerprint must be a SHA-256 fingerprint: 64 hex digits")
    return clean


def tls_context(url: str, ca: Path | None, fingerprint: str | None) -> ssl.SSLContext | bool:
    """Build the TLS verification for ``url``: system CAs, a CA file, or a pinned cert."""
    if not url.startswith("https://"):
        return True
    if fingerprint:
        return _pinned_context(url, _normal_fp(fingerprint))
    if ca is not None:
        try:
            return ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load CA file {ca}: {exc}") from exc
    return True


def _pinned_context(url: str, want: str) -> ssl.SSLContext:
    """Fetch the server's certificate, check its fingerprint, and trust exactly that one."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 443
    probe = ssl.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=10) as sock,
            probe.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise Offline(f"cannot reach {url}: {exc}") from exc
    if der is None or hashlib.sha256(der).hexdigest() != want:
        got = fingerprint_of(der) if der else "none"
        raise AuthError(
            f"the server's certificate fingerprint is {got}, not the pinned one; "
            "check you reach the right server"
        )
    ctx = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(der))
    ctx.check_hostname = False
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


@dataclass
class Connection:
    """Calls to one server for one client name.

    Shared by the batch and upload threads: one httpx.Client serves them all (httpx
    documents it may be shared between threads); ``_lock`` guards ``_http`` and the
    counters. ``data_port`` is a flag that is only ever cleared: a thread that reads it
    just before another clears it tries the port once more and falls back to HTTP.
    """

    server: str
    token: str | None
    client: str
    verify: ssl.SSLContext | bool = True
    counters: Counters = field(default_factory=Counters)
    data_port: int | None = None  # the server's port for big files (from hello), if any
    zstd_bodies: bool = False  # the server takes request bodies as zstd (from hello)
    device: str | None = None  # this machine's name, sent for the history of shared folders
    _http: httpx.Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def http(self) -> httpx.Client:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            if self.device:
                headers["X-Homekeep-Device"] = self.device
            self._http = httpx.Client(
                base_url=self.server.rstrip("/") + "/api/sync" + PREFIX,
                headers=headers,
                verify=self.verify,
                timeout=httpx.Timeout(300, connect=10),
                trust_env=False,
            )
        return self._http

    def close(self) -> None:
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; return its JSON, or raise our error for the server's answer."""
        with self._lock:
            http = self.http()
        content = kwargs.get("content")
        try:
            response = http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self.close()
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise AuthError(
                    f"cannot verify the TLS certificate of {self.server}: pass --ca FILE, or "
                    "--fingerprint SHA256 as printed by 'homekeep sync server' at start"
                ) from exc
            raise Offline(f"cannot reach {self.server}: {exc}") from exc
        with self._lock:
            self.counters.requests += 1
            self.counters.sent += len(content) if isinstance(content, bytes) else 0
            self.counters.received += response.num_bytes_downloaded  # as sent: zstd or not
        if response.status_code >= 400:
            raise _error(response, self.server)
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise Offline(f"{self.server} answered with something that is not JSON") from exc

    def hello(self) -> dict[str, Any]:
        """Check the server speaks our protocol and accepts our token."""
        answer: dict[str, Any] = self.request("GET", "/hello")
        if answer.get("protocol") != VERSION:
            raise UsageError(
                f"{self.server} speaks sync protocol {answer.get('protocol')}, this client "
                f"{VERSION}; upgrade the older side"
            )
        return answer

    def manifest(self, generation: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", f"/clients/{self.client}/manifest", params={"generation": generation}
        )
        return result

    def changes(self, since: int, wait: float) -> int:
        """The shared folder's change counter, once it passes ``since`` or ``wait`` is over."""
        result: dict[str, Any] = self.request(
            "GET",
            f"/clients/{self.client}/changes",
            params={"since": since, "wait": wait},
            timeout=httpx.Timeout(wait + 30, connect=10),
        )
        return int(result["change"])

    def file_chunks(self, path: str) -> dict[str, Any]:
        """A shared folder file's content id, size and chunk list (to receive it)."""
        result: dict[str, Any] = self.request(
            "POST", f"/clients/{self.client}/file-chunks", json={"path": path}
        )
        return result

    def read(self, path: str, file_hash: str, ranges: list[tuple[int, int]]) -> bytes:
        """Byte ranges of a shared folder's file; more bytes than asked is an error."""
        want = sum(n for _, n in ranges)
        body = {"path": path, "hash": file_hash, "ranges": [list(r) for r in ranges]}
        with self._lock:
            http = self.http()
        out = bytearray()
        try:
            with http.stream("POST", f"/clients/{self.client}/read", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response, self.server)
                for part in response.iter_bytes():  # inflated as it arrives: bounded below
                    out += part
                    if len(out) > want:
                        raise Offline(f"{self.server} sent more than the {want} bytes asked for")
                received = response.num_bytes_downloaded
        except httpx.TransportError as exc:
            self.close()
            raise Offline(f"cannot reach {self.server}: {exc}") from exc
        with self._lock:
            self.counters.requests += 1
            self.counters.received += received
        if len(out) != want:
            raise Offline(f"{self.server} sent {len(out)} of the {want} bytes asked for")
        return bytes(out)

    def _packed(self, body: bytes, content_type: str) -> tuple[bytes, dict[str, str]]:
        """A request body as zstd when the server takes it and it is worth it."""
        headers = {"Content-Type": content_type}
        if not self.zstd_bodies or len(body) < BODY_MIN:
            return body, headers
        headers["Content-Encoding"] = "zstd"
        return deflate(body), headers

    def ops(self, ops: list[dict[str, Any]]) -> dict[str, Any]:
        body, headers = self._packed(ops_body(ops), "application/json")
        result: dict[str, Any] = self.request(
            "POST", f"/clients/{self.client}/ops", content=body, headers=headers
        )
        return result

    def commit(self, ops: list[dict[str, Any]], pack: bytes, data_bytes: int) -> dict[str, Any]:
        """Ops plus the chunks they need, as one request (see the server's /commit)."""
        head = ops_body(ops)
        body, headers = self._packed(
            len(head).to_bytes(4, "big") + head + pack, "application/octet-stream"
        )
        result: dict[str, Any] = self.request(
            "POST", f"/clients/{self.client}/commit", content=body, headers=headers
        )
        with self._lock:
            self.counters.data += data_bytes
        return result

    def upload(
        self, params: dict[str, Any], body: Iterator[bytes], *, compressed: bool
    ) -> dict[str, Any]:
        """Stream one whole file; ``body`` yields it (as a zstd stream when ``compressed``)."""
        sent = [0]

        def counted() -> Iterator[bytes]:
            for block in body:
                sent[0] += len(block)
                yield block

        headers = {"Content-Type": "application/octet-stream"}
        if compressed:
            headers["Content-Encoding"] = "zstd"
        try:
            result: dict[str, Any] = self.request(
                "PUT",
                f"/clients/{self.client}/files",
                params=params,
                content=counted(),
                headers=headers,
            )
        finally:
            with self._lock:
                self.counters.sent += sent[0]
                self.counters.data += sent[0]
        return result

    def put_list(self, file_hash: str, size: int, chunks: ListFile) -> dict[str, Any]:
        """Send a huge file's chunk list on its own, streamed a window at a time."""
        sent = [0]

        def body() -> Iterator[bytes]:
            for part in chunks.slices():
                sent[0] += len(part)
                yield part

        try:
            result: dict[str, Any] = self.request(
                "PUT",
                f"/clients/{self.client}/lists/{file_hash}",
                params={"size": size},
                content=body(),
                headers={"Content-Type": "application/octet-stream"},
            )
        finally:
            with self._lock:
                self.counters.sent += sent[0]
        return result

    def send_file(self, params: dict[str, Any], path: Path) -> dict[str, Any] | None:
        """Stream one whole file over the data port with sendfile; None if there is none.

        The header goes first and the server answers "continue" only once it accepts it,
        so a refused upload costs no body. A data port that cannot be reached is not
        tried again: the caller falls back to HTTP.
        """
        if self.data_port is None or not self.token:
            return None
        parts = urlsplit(self.server)
        host = parts.hostname or "127.0.0.1"
        try:
            sock = socket.create_connection((host, self.data_port), timeout=10)
        except OSError:
            self.data_port = None
            return None
        try:
            sock.settimeout(300)
            if parts.scheme == "https":
                context = self.verify if isinstance(self.verify, ssl.SSLContext) else None
                context = context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=host)
            header = {**params, "token": self.token, "client": self.client}
            sock.sendall(_dumps(header) + b"\n")
            reader = sock.makefile("rb")
            try:
                answer = _answer(reader.readline(64 * 1024), self.server)
            except Offline as exc:  # busy (eight uploads at once) or failing: use HTTP
                log.info("data port of %s: %s; this file goes over HTTP", self.server, exc)
                return None
            if answer.get("status") != "continue":
                log.info("data port of %s answered %s; using HTTP", self.server, answer)
                return None
            size = int(params["size"])
            with path.open("rb") as fh:
                sent = sock.sendfile(fh, 0, size)
            with self._lock:
                self.counters.sent += sent
                self.counters.data += sent
                self.counters.requests += 1
            if sent != size:
                raise InvalidInput(f"{path} changed while it was sent")
            return _answer(reader.readline(64 * 1024), self.server)
        except ssl.SSLCertVerificationError as exc:
            raise AuthError(
                f"cannot verify the TLS certificate of {self.server}'s data port: {exc}"
            ) from exc
        except OSError as exc:
            log.warning("the data port of %s failed (%s); using HTTP", self.server, exc)
            self.data_port = None
            return None
        finally:
            sock.close()

    def chunks(self, pack: bytes, data_bytes: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT",
            f"/clients/{self.client}/chunks",
            content=pack,
            headers={"Content-Type": "application/octet-stream"},
        )
        with self._lock:
            self.counters.data += data_bytes
        return result


def ops_body(ops: list[dict[str, Any]]) -> bytes:
    """``{"ops": [...]}`` as JSON bytes; a ``chunks`` value given as base64 bytes goes in as
    it is, so a huge file's list (megabytes) is not copied through a str on its way."""
    parts = [b'{"ops":[']
    for i, op in enumerate(ops):
        if i:
            parts.append(b",")
        chunks = op.get("chunks")
        if isinstance(chunks, bytes):
            rest = _dumps({k: v for k, v in op.items() if k != "chunks"})
            parts += [rest[:-1], b',"chunks":"' if len(rest) > 2 else b'"chunks":"', chunks, b'"}']
        else:
            parts.append(_dumps(op))
    parts.append(b"]}")
    return b"".join(parts)


def _dumps(payload: Any) -> bytes:
    import json

    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _answer(line: bytes, server: str) -> dict[str, Any]:
    """One JSON line from the data port, or our error for the one it reports."""
    import json

    try:
        answer = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise Offline(f"{server}'s data port answered something that is not JSON") from exc
    if not isinstance(answer, dict):
        raise Offline(f"{server}'s data port answered {str(answer)[:80]}")
    error = answer.get("error")
    if isinstance(error, dict):
        status = error.get("status")
        status = status if isinstance(status, int) and not isinstance(status, bool) else 500
        raise _error_for(status, str(error.get("message", "")), server)
    return answer


def _error(response: httpx.Response, server: str) -> HomekeepError:
    return _error_for(response.status_code, error_message(response), server)


def _error_for(status: int, message: str, server: str) -> HomekeepError:
    """Our error for a status the server answered (over HTTP or the data port)."""
    if status == 401:
        return AuthError(
            f"{server} refused the token ({message}); create one on the server with "
            "'homekeep token create NAME --scope sync' and pass it with --token"
        )
    if 400 <= status < 500 and status != 429:  # the request is wrong: retrying cannot help
        return error_class_for(status)(f"{server}: {message}")
    return Offline(f"{server} answered {status}: {message}")
