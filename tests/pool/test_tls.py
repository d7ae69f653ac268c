"""TLS: servers speak it when a certificate is configured; plain or untrusting clients fail."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from homekeep.pool.client import RoomClient
from tests.pool.conftest import Raw, pool_server, run


def test_tls_servers_relay_to_trusting_clients_only(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    with pool_server(tmp_path, tls_cert=cert_file, tls_key=key_file) as pool:

        async def scenario() -> None:
            ann = RoomClient(pool.dispatch(ca=ca_file), "ann")
            bob = RoomClient(pool.dispatch(ca=ca_file), "bob")
            await ann.join()
            await bob.join()
            assert ann.seat is not None
            assert ann.seat.tls
            await ann.send("over TLS")
            assert (await bob.wait_for("message", 5))["text"] == "over TLS"

            plain = await Raw.connect(ann.seat.port)  # speaks plain text to a TLS port
            await plain.send(b'{"type":"hello","ticket":"x"}\n')
            assert await plain.closed(timeout=10)

            stranger = RoomClient(pool.dispatch(), "stranger")  # trusts only the system CAs
            with pytest.raises(ssl.SSLCertVerificationError):
                await stranger.join()
            await stranger.dispatch.aclose()

            await bob.send("still fine")
            assert (await ann.wait_for("message", 5))["text"] == "still fine"
            await asyncio.gather(ann.close(), bob.close())
            await ann.dispatch.aclose()
            await bob.dispatch.aclose()

        run(scenario())
