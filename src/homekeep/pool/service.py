"""Open the pool service of an area context: config, secret, history, the dispatcher."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from homekeep.core.area import AreaContext
from homekeep.core.errors import ConfigError
from homekeep.pool.client import Dispatch
from homekeep.pool.config import PoolConfig
from homekeep.pool.dispatcher import Dispatcher
from homekeep.pool.store import MIGRATIONS, EventStore
from homekeep.pool.tickets import load_secret


@dataclass
class Service:
    """What commands, the API and `homekeep serve` share."""

    config: PoolConfig
    store: EventStore
    dispatcher: Dispatcher
    default_url: str

    def remote(
        self, url: str | None = None, token: str | None = None, ca: Path | None = None
    ) -> Dispatch:
        """A client of a running dispatcher (for the CLI): options, then config, then defaults."""
        return Dispatch(
            url or self.config.url or self.default_url,
            token or self.config.token.get_secret_value(),
            ca=ca,
        )

    def close(self) -> None:
        self.store.db.close()


def public_host(config: PoolConfig) -> str:
    """The address clients are told to connect to."""
    if config.public_host:
        return config.public_host
    try:
        wildcard = ipaddress.ip_address(config.host).is_unspecified
    except ValueError:
        wildcard = False
    return socket.gethostname() if wildcard else config.host


def _tls(ctx: AreaContext, config: PoolConfig) -> tuple[str, str] | None:
    """The pool's certificate (checked to load before any server starts), else the web
    server's (which the web server checks itself)."""
    cert, key = config.tls_cert, config.tls_key
    if cert is None or key is None:
        cert, key = ctx.settings.server.tls_cert, ctx.settings.server.tls_key
        return (str(cert), str(key)) if cert is not None and key is not None else None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[pool] tls_cert/tls_key: cannot load {cert} with {key}: {exc}") from exc
    return str(cert), str(key)


def open_service(ctx: AreaContext) -> Service:
    """Load the config and the secret, open the history, build the (not yet started) pool."""
    config = ctx.config(PoolConfig)
    try:
        secret = load_secret(ctx.dir / "secret")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"pool secret: {exc}") from exc
    store = EventStore(ctx.database(MIGRATIONS))
    dispatcher = Dispatcher(
        config,
        secret,
        public_host=public_host(config),
        tls=_tls(ctx, config),
        record=store.record_async,
    )
    return Service(config, store, dispatcher, ctx.settings.server.base_url())
