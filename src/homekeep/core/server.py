"""Run an ASGI app on uvicorn: bind first (clear errors, port 0), TLS, graceful stop."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from homekeep.core.errors import ConfigError, UsageError

log = logging.getLogger(__name__)


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
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then finish open requests and stop."""
    check_tls(tls_cert, tls_key)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{actual}"
    config = uvicorn.Config(
        app,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
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
