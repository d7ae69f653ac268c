"""TLS with a self-signed certificate: verified by a CA file or a pinned fingerprint."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support import create_token, run_cli, running
from tests.sync.helpers import snapshot


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str, str, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp / "cert.pem", tmp / "key.pem", tmp / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    fingerprint = hashlib.sha256(der).hexdigest()
    data = tmp / "server-data"
    token = create_token(data, "laptop", "sync")
    args: list[str | Path] = [
        "sync",
        "server",
        tmp / "server",
        "--port",
        "0",
        "--tls-cert",
        cert_file,
        "--tls-key",
        key_file,
    ]
    with running(args, data_dir=data, verify=ssl.create_default_context(cafile=ca_file)) as srv:
        assert srv.url.startswith("https://")
        yield srv.url, tmp / "server", token, fingerprint, ca_file


def _push(src: Path, url: str, token: str, *extra: str | Path) -> tuple[int, str, str]:
    result = run_cli(
        "sync",
        "push",
        src,
        "--server",
        url,
        "--token",
        token,
        "--name",
        "tls",
        *extra,
        data_dir=src.parent / "client-data",
    )
    return result.returncode, result.stdout, result.stderr


def test_push_over_tls_with_a_ca_file(
    tls: tuple[str, Path, str, str, Path], tmp_path: Path
) -> None:
    url, root, token, _, ca_file = tls
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret.txt").write_text("over TLS")
    code, _, err = _push(src, url, token, "--ca", ca_file)
    assert code == 0, err
    assert snapshot(root / "tls") == snapshot(src)


def test_push_over_tls_with_a_pinned_fingerprint(
    tls: tuple[str, Path, str, str, Path], tmp_path: Path
) -> None:
    url, root, token, fingerprint, _ = tls
    src = tmp_path / "src"
    src.mkdir()
    (src / "pinned.txt").write_text("pinned")
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    code, _, err = _push(src, url, token, "--fingerprint", colons)
    assert code == 0, err
    assert (root / "tls/pinned.txt").read_text() == "pinned"


@pytest.mark.parametrize("extra", [(), ("--fingerprint", "ab" * 32)])
def test_an_unverified_certificate_is_refused_in_one_line(
    tls: tuple[str, Path, str, str, Path], tmp_path: Path, extra: tuple[str, ...]
) -> None:
    url, _, token, _, _ = tls
    src = tmp_path / "src"
    src.mkdir()
    code, _, err = _push(src, url, token, *extra)
    assert code != 0
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
