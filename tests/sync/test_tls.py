"""TLS with a self-signed certificate: verified by a CA file or a pinned fingerprint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import run_cli
from tests.sync.helpers import snapshot, tls_sync_server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str, str, Path]]:
    with tls_sync_server(tmp_path_factory.mktemp("tls")) as found:
        srv = found.server
        yield srv.url, srv.root, srv.token, found.fingerprint, found.ca_file


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
