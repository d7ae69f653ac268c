"""The first run: a set-up page that makes the first admin, only for the machine itself."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, WebSession, clean_env, running, serve

GOOD = {"name": "alice", "password": "alice password", "password2": "alice password"}


def users(data_dir: Path) -> list[tuple[object, ...]]:
    db = data_dir / "homekeep.sqlite"
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, admin FROM users").fetchall()


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({**GOOD, "password2": "something else"}, 422, "differ"),
        ({**GOOD, "password": "short", "password2": "short"}, 422, "too short"),
        ({**GOOD, "name": "<script>alert(1)</script>"}, 422, "invalid user name"),
        ({**GOOD, "name": "a" * 10_000}, 422, "longer than"),
        ({"name": "alice"}, 422, "too short"),
        ({}, 422, "invalid user name"),
    ],
)
def test_bad_input_on_the_set_up_page_makes_no_user(
    data_dir: Path, form: dict[str, str], status: int, message: str
) -> None:
    with serve(data_dir) as server:
        web = WebSession.open(server.url)
        token = web.form_token("/setup")
        response = web.client.post(
            "/setup", data={"csrf_token": token, **form}, headers={"Origin": web.origin}
        )
        assert response.status_code == status
        assert message in response.text
        assert "<script>alert" not in response.text
        assert users(data_dir) == []
        assert web.client.get("/healthz").status_code == 200


def test_the_first_admin_is_made_once_from_loopback(data_dir: Path) -> None:
    with serve(data_dir) as server:
        web = WebSession.open(server.url)
        assert web.client.get("/").headers["location"] == "/setup"
        assert "No user exists yet" in web.client.get("/login").text
        token = web.form_token("/setup")
        cross = web.client.post(
            "/setup",
            data={"csrf_token": token, **GOOD},
            headers={"Origin": "http://evil.example"},
        )
        assert cross.status_code == 403
        no_token = web.client.post("/setup", data=GOOD, headers={"Origin": web.origin})
        assert no_token.status_code == 403
        assert users(data_dir) == []
        made = web.client.post(
            "/setup", data={"csrf_token": token, **GOOD}, headers={"Origin": web.origin}
        )
        assert made.status_code == 303
        assert made.headers["location"] == "/"
        assert users(data_dir) == [("alice", 1)]
        assert web.client.get("/api/whoami").json()["admin"] is True
        other = WebSession.open(server.url, "127.0.0.2")
        assert other.client.get("/setup").headers["location"] == "/login"
        again = other.client.post(
            "/setup",
            data={"csrf_token": other.form_token(), "name": "mallory", "password": "x" * 9},
            headers={"Origin": other.origin},
        )
        assert again.status_code == 303
        assert again.headers["location"] == "/login"
        assert users(data_dir) == [("alice", 1)]
        assert other.client.get("/").headers["location"] == "/login"  # no set-up any more


def test_a_remote_client_behind_a_trusted_proxy_is_refused(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[web]\ntrusted_proxies = ["127.0.0.9"]\n')
    with running(["--config", config, "serve", "--port", "0"], data_dir=data_dir) as server:
        proxy = WebSession.open(server.url, "127.0.0.9")
        remote = {"X-Forwarded-For": "198.51.100.7"}
        page = proxy.client.get("/setup", headers={**remote, "Accept": "text/html"})
        assert page.status_code == 403
        assert "only from the server itself" in page.text
        assert proxy.client.get("/", headers=remote).headers["location"] == "/login"
        token = proxy.form_token("/setup")  # the proxy's own (loopback) request
        posted = proxy.client.post(
            "/setup",
            data={"csrf_token": token, **GOOD},
            headers={**remote, "Origin": proxy.origin},
        )
        assert posted.status_code == 403
        assert users(data_dir) == []
        # forwarded headers from a peer that is not a trusted proxy are ignored
        direct = WebSession.open(server.url, "127.0.0.10")
        assert direct.client.get("/setup", headers=remote).status_code == 200
        log = (data_dir / "logs" / "homekeep.log").read_text()
        assert "first-admin page refused to 198.51.100.7" in log


def _netns() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _netns(), reason="needs unshare -rn (user and network namespaces)")
def test_a_non_loopback_peer_and_a_spoofed_header_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "tests.core.netns_probe", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    untrusted, trusted = answers["untrusted"], answers["trusted"]
    assert untrusted["plain"] == 403
    assert untrusted["x-forwarded-for"] == 403  # spoofed: the peer is no trusted proxy
    assert untrusted["forwarded"] == 403
    assert untrusted["landing"] == "/login"
    assert untrusted["post"] == 403
    assert untrusted["loopback"] == 200  # the same server answers its own machine
    assert untrusted["users"] == 1  # still no user
    # the same peer listed as a proxy is believed: it says its client is local
    assert trusted["plain"] == 403
    assert trusted["x-forwarded-for"] == 200
    assert trusted["forwarded"] == 200
    assert trusted["users"] == 1
