"""The client's connection to a sync server: TLS (CA file or pinned certificate), auth, errors."""

from __future__ import annotations

import hashlib
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
    Unavailable,
    UsageError,
    error_class_for,
)
from homekeep.sync.protocol import PREFIX, VERSION


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
    """Calls to one server for one client name."""

    server: str
    token: str | None
    client: str
    verify: ssl.SSLContext | bool = True
    counters: Counters = field(default_factory=Counters)
    _http: httpx.Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def http(self) -> httpx.Client:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._http = httpx.Client(
                base_url=self.server.rstrip("/") + "/api/sync" + PREFIX,
                headers=headers,
                verify=self.verify,
                timeout=httpx.Timeout(300, connect=10),
                trust_env=False,
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

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
            self.counters.received += len(response.content)
        if response.status_code >= 400:
            raise _error(response, self.server)
        try:
            return response.json()
        except ValueError as exc:
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

    def ops(self, ops: list[dict[str, Any]]) -> dict[str, Any]:
        body = _dumps({"ops": ops})
        result: dict[str, Any] = self.request(
            "POST",
            f"/clients/{self.client}/ops",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        return result

    def commit(self, ops: list[dict[str, Any]], pack: bytes, data_bytes: int) -> dict[str, Any]:
        """Ops plus the chunks they need, as one request (see the server's /commit)."""
        head = _dumps({"ops": ops})
        body = len(head).to_bytes(4, "big") + head + pack
        result: dict[str, Any] = self.request(
            "POST",
            f"/clients/{self.client}/commit",
            content=body,
            headers={"Content-Type": "application/octet-stream"},
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


def _dumps(payload: Any) -> bytes:
    import json

    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(response: httpx.Response, server: str) -> HomekeepError:
    try:
        body = response.json()
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    status = response.status_code
    if status == 401:
        return AuthError(
            f"{server} refused the token ({message}); create one on the server with "
            "'homekeep token create NAME --scope sync' and pass it with --token"
        )
    if 400 <= status < 500 and status != 429:  # the request is wrong: retrying cannot help
        return error_class_for(status)(f"{server}: {message}")
    return Offline(f"{server} answered {status}: {message}")
