"""Run an ASGI app on uvicorn: bind first (clear errors, port 0), TLS, graceful stop.

Every HTTP server homekeep runs goes through ``serve``, so each gets the same guards
against hostile clients (``GuardedHttpProtocol``): request headers bounded in bytes and
in count (431 past the bound, checked before the parser buffers them, so a huge header
costs neither memory nor quadratic parsing), a deadline for the headers of each request
(408 for a client that sends them too slowly, the slow-loris attack), and a bound on open
connections (503 past it).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httptools
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from homekeep.core.errors import ConfigError, UsageError
from homekeep.core.limits import Limits

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose headers are too big."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded headers, a header deadline, and a cap.

    One instance serves one connection and runs on the event loop only; its counters
    belong to that connection.
    """

    limits = Limits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._header_count = 0
        self._in_headers = True
        self._header_clock: asyncio.TimerHandle | None = None
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection from %s: too many open connections", self.client)
            self._refuse(503, "server busy: too many open connections; try again later")
            return
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        # While a request's headers are being read, feed the parser at most what is left
        # of the bound: past it the request is refused before anything more is buffered.
        while data:
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                return
            if self._in_headers:
                room = self.limits.max_header_bytes - self._header_bytes
                if room <= 0:
                    self._refuse(431, "request headers too large")
                    return
                piece, data = data[:room], data[room:]
                self._header_bytes += len(piece)
            else:
                piece, data = data, b""
            if not self._feed(piece):
                return

    def _feed(self, piece: bytes) -> bool:
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._refuse(431, "too many request headers")
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return False
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_count = 0
        self._in_headers = True
        self._start_header_clock()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            raise _TooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_header_clock()
        super().on_headers_complete()

    def _start_header_clock(self) -> None:
        if self._header_clock is None:
            self._header_clock = self.loop.call_later(
                self.limits.header_timeout_seconds, self._headers_too_slow
            )

    def _stop_header_clock(self) -> None:
        if self._header_clock is not None:
            self._header_clock.cancel()
            self._header_clock = None

    def _headers_too_slow(self) -> None:
        self._header_clock = None
        if self._in_headers and not self.transport.is_closing():
            if self._header_bytes:  # a silent keep-alive connection just closes
                self._refuse(408, "request headers not received in time")
            else:
                self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer a plain error in the one JSON shape and close the connection."""
        self._stop_header_clock()
        code = {408: "request_timeout", 431: "headers_too_large", 503: "unavailable"}[status]
        body = f'{{"error":{{"code":"{code}","message":"{message}"}}}}'.encode()
        reason = {408: "Request Timeout", 431: "Request Header Fields Too Large"}.get(
            status, "Service Unavailable"
        )
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()


def guarded_protocol(limits: Limits) -> type[GuardedHttpProtocol]:
    """Return the protocol class uvicorn should use, bound to ``limits``."""
    return type("GuardedHttp", (GuardedHttpProtocol,), {"limits": limits})


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket, or raise an error that says what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is already in use: stop the other server "
                "or choose another port with --port"
            ) from exc
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_tls(cert: Path | None, key: Path | None) -> None:
    """Refuse half a TLS setup, or files that do not load."""
    if (cert is None) != (key is None):
        raise UsageError("TLS needs both --tls-cert and --tls-key")
    if cert is None or key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert} with key {key}: {exc}") from exc


def serve(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
    name: str = "homekeep",
    limits: Limits | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then finish open requests and stop."""
    check_tls(tls_cert, tls_key)
    limits = limits or Limits()
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{actual}"
    config = uvicorn.Config(
        app,
        http=guarded_protocol(limits),
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=limits.keep_alive_seconds,
        server_header=False,
        # Forwarded headers count only from [web] trusted_proxies (core/proxies.py);
        # uvicorn's own handling would believe them from any local process.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(url)
    log.info("%s listening on %s", name, url)
    # uvicorn re-raises the stop signal once it has shut down gracefully; with these
    # handlers in place that is a no-op, so a clean stop exits 0 and cleanup below runs.
    previous = _quiet_stop_signals()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("%s stopped", name)


def _quiet_stop_signals() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
