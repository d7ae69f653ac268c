"""The CLI against a real dispatcher: status, allocate, connect, history, and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.pool.conftest import Pool
from tests.support import HOMEKEEP, clean_env, run_cli

CONNECT = ["pool", "connect", "--stay", "--json"]


def pool_cli(pool: Pool, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**pool.env, "HOMEKEEP_POOL_URL": pool.url, "HOMEKEEP_POOL_TOKEN": pool.token}
    return run_cli("pool", *args, data_dir=pool.data_dir, env=env, **kwargs)  # type: ignore[arg-type]


def test_status_shows_the_servers_as_a_table_and_as_json(pool: Pool) -> None:
    pool.wait_until(lambda s: s["pool"]["ready"] >= 1, what="a ready server")
    shown = pool_cli(pool, "status")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("pool running: ")
    assert "server" in shown.stdout
    assert "memory" in shown.stdout
    data = json.loads(pool_cli(pool, "status", "--json").stdout)
    assert data["pool"]["state"] == "running"
    assert all("port" in server for server in data["servers"])


def test_allocate_prints_a_seat_any_client_can_use(pool: Pool) -> None:
    seat = json.loads(pool_cli(pool, "allocate", "--name", "script", "--json").stdout)
    assert seat["name"] == "script"
    assert seat["port"] > 0
    human = pool_cli(pool, "allocate")
    assert human.returncode == 0, human.stderr
    assert '{"type": "hello", "ticket": "' in human.stdout


def test_connect_sends_lines_and_shows_the_others(pool: Pool) -> None:
    env = {**pool.env, "HOMEKEEP_POOL_URL": pool.url, "HOMEKEEP_POOL_TOKEN": pool.token}
    listener = subprocess.Popen(
        [*HOMEKEEP, "--data-dir", str(pool.data_dir), *CONNECT, "--name", "ear"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(env),
    )
    try:
        assert listener.stderr is not None
        joined = listener.stderr.readline()  # printed once it holds a seat
        assert "joined server" in joined, joined
        said = pool_cli(pool, "connect", "--name", "mouth", input="hello ear\n\nbye\n")
        assert said.returncode == 0, said.stderr
        assert "joined server" in said.stderr
        time.sleep(0.5)
        listener.send_signal(signal.SIGTERM)
        out, err = listener.communicate(timeout=20)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait(timeout=5)
    assert listener.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    texts = [m["text"] for m in lines if m["type"] == "message"]
    assert texts == ["hello ear", "bye"]  # the empty line is not sent
    assert any(m["type"] == "joined" and m["name"] == "mouth" for m in lines)


def test_history_lists_server_events(pool: Pool) -> None:
    pool.wait_until(lambda s: s["pool"]["ready"] >= 1, what="a ready server")
    events = json.loads(pool_cli(pool, "history", "--json", "--limit", "5").stdout)
    assert any(e["kind"] == "started" for e in events)
    human = pool_cli(pool, "history")
    assert "started" in human.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["status", "--url", "ftp://x"], {}, 2, "must start with http:// or https://"),
        (["status", "--url", "http://127.0.0.1:1"], {}, 7, "no dispatcher answers"),
        (["status", "--token", "hk_nope"], {}, 5, "pool: "),
        (["allocate", "--name", "bad\x1bname"], {}, 2, "without control characters"),
        (["allocate", "--name", "x" * 41], {}, 2, "without control characters"),
        (["connect", "--ca", "/nonexistent.pem"], {}, 2, "does not exist"),
        (["history", "--limit", "0"], {}, 2, "0 is not in the range"),
        (["status"], {"HOMEKEEP_POOL_PORT_RANGE": "9-5"}, 2, "port_range"),
        (
            ["status"],
            {"HOMEKEEP_POOL_MIN_IDLE": "9", "HOMEKEEP_POOL_MAX_SERVERS": "2"},
            2,
            "min_idle",
        ),
        (["nothing"], {}, 2, "No such command"),
    ],
)
def test_bad_input_gets_one_line_and_an_exit_code(
    pool: Pool, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    result = run_cli(
        "pool",
        *args,
        data_dir=pool.data_dir,
        env={**pool.env, "HOMEKEEP_POOL_URL": pool.url, "HOMEKEEP_POOL_TOKEN": pool.token, **env},
    )
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_bad_certificate(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    result = run_cli(
        "pool",
        "serve",
        "--port",
        "0",
        data_dir=tmp_path / "data",
        env={"HOMEKEEP_POOL_TLS_CERT": str(broken), "HOMEKEEP_POOL_TLS_KEY": str(broken)},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: [pool] tls_cert/tls_key: cannot load")
