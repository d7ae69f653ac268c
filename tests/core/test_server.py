"""`homekeep serve` as a real process: health, docs, the error shape, auth, TLS, shutdown."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from homekeep.core.tokens import TokenStore
from tests.support import Server, create_token, free_port, run_cli, running, serve

PROBE = Path(__file__).with_name("probe_server.py")


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """The real app plus a test area whose routes provoke each kind of error."""
    data, markers = tmp_path / "data", tmp_path / "markers"
    data.mkdir()
    markers.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(PROBE), str(data), str(markers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://"), proc.stderr.read() if proc.stderr else ""
    for _ in range(100):
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    server = Server(proc, url, data)
    yield server, markers
    server.stop()
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    assert message
    return message


def test_serve_answers_health_docs_and_landing(data_dir: Path) -> None:
    with serve(data_dir) as server, server.client() as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        assert client.get("/openapi.json").json()["info"]["title"] == "homekeep"
        landing = client.get("/")
        assert landing.status_code == 302  # a fresh server: to the first admin's set-up
        assert landing.headers["location"] == "/setup"
        assert "homekeep" in client.get("/setup").text
        assert server.url.startswith("http://127.0.0.1:")


def test_framework_errors_have_the_one_shape(probe: tuple[Server, Path]) -> None:
    server, _ = probe
    with server.client() as client:
        assert_error(client.get("/no/such/page"), 404, "not_found")
        assert_error(client.post("/healthz"), 405, "method_not_allowed")
        assert_error(client.get("/api/probe/boom"), 500, "internal")
        assert "kaboom" not in client.get("/api/probe/boom").text
        assert_error(client.get("/api/probe/conflict"), 409, "conflict")


def test_auth_and_validation(probe: tuple[Server, Path]) -> None:
    server, _ = probe
    assert server.data_dir is not None
    store = TokenStore(server.data_dir / "homekeep.sqlite")
    good = store.create("prober", ["probe"], ["probe", "other"])
    other = store.create("other", ["other"], ["probe", "other"])
    revoked = store.create("old", ["probe"], ["probe", "other"])
    store.revoke("old")
    store.close()
    item = {"name": "x", "count": 1}
    with server.client() as client:
        assert_error(client.post("/api/probe/items", json=item), 401, "unauthorized")
        headers = {"Authorization": "Bearer hk_000000000000_" + "A" * 43}
        assert_error(
            client.post("/api/probe/items", json=item, headers=headers), 401, "unauthorized"
        )
        bad = {"Authorization": "Bearer " + good[:-1] + ("B" if good[-1] != "B" else "C")}
        assert_error(client.post("/api/probe/items", json=item, headers=bad), 401, "unauthorized")
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        assert_error(client.post("/api/probe/items", json=item, headers=basic), 401, "unauthorized")
        old = {"Authorization": f"Bearer {revoked}"}
        assert "revoked" in assert_error(
            client.post("/api/probe/items", json=item, headers=old), 401, "unauthorized"
        )
        wrong = {"Authorization": f"Bearer {other}"}
        assert_error(client.post("/api/probe/items", json=item, headers=wrong), 403, "forbidden")
        ok = {"Authorization": f"Bearer {good}"}
        response = client.post("/api/probe/items", json=item, headers=ok)
        assert response.status_code == 200
        assert response.json() == {"name": "x", "by": "prober"}
        message = assert_error(
            client.post("/api/probe/items", json={"name": "x", "count": "many"}, headers=ok),
            422,
            "invalid_input",
        )
        assert "count" in message
        assert_error(
            client.post("/api/probe/items", content=b"{not json", headers=ok), 422, "invalid_input"
        )
        assert client.get("/api/whoami", headers=ok).json() == {
            "name": "prober",
            "scopes": ["probe"],
            "kind": "token",
            "user": None,
            "admin": False,
        }


def test_real_cli_token_works_against_real_server(data_dir: Path) -> None:
    token = create_token(data_dir, "cli", "all")
    with serve(data_dir) as server:
        with server.client(token) as client:
            assert client.get("/api/whoami").json()["name"] == "cli"
        assert run_cli("token", "revoke", "cli", data_dir=data_dir).returncode == 0
        with server.client(token) as client:
            assert_error(client.get("/api/whoami"), 401, "unauthorized")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_finishes_requests_and_runs_hooks(
    probe: tuple[Server, Path], sig: int
) -> None:
    server, markers = probe
    assert (markers / "started").read_text() == "yes"
    results: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: results.append(httpx.get(server.url + "/api/probe/slow", timeout=10))
    )
    thread.start()
    time.sleep(0.5)
    code = server.stop(sig)
    thread.join(timeout=10)
    assert code == 0
    assert results[0].json() == {"finished": True}
    assert (markers / "stopped").read_text() == "yes"


def test_tls(tmp_path: Path, data_dir: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(cafile=str(ca_file))
    with running(
        ["serve", "--port", "0", "--tls-cert", cert_file, "--tls-key", key_file],
        data_dir=data_dir,
        verify=context,
    ) as server:
        assert server.url.startswith("https://127.0.0.1:")
        assert httpx.get(server.url + "/healthz", verify=context).json()["status"] == "ok"
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/healthz")  # not trusted without the CA


def test_tls_needs_both_files(tmp_path: Path, data_dir: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a cert")
    result = run_cli("serve", "--port", "0", "--tls-cert", cert, data_dir=data_dir)
    assert result.returncode == 2
    assert "--tls-key" in result.stderr
    key = tmp_path / "key.pem"
    key.write_text("nor a key")
    result = run_cli(
        "serve", "--port", "0", "--tls-cert", cert, "--tls-key", key, data_dir=data_dir
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot load TLS certificate")


def test_port_in_use_is_one_line(data_dir: Path) -> None:
    port = free_port()
    with running(["serve", "--port", str(port)], data_dir=data_dir):
        result = run_cli("serve", "--port", str(port), data_dir=data_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]]
    assert "already in use" in lines[0]
