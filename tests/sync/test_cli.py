"""The CLI around the sync: server start rules, status and log, mounting in `homekeep serve`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import free_port, run_cli, running
from tests.sync.helpers import SyncServer, push, snapshot, sync_server, sync_token


def test_a_non_empty_folder_is_refused_unless_adopted(tmp_path: Path) -> None:
    root = tmp_path / "server"
    (root / "old").mkdir(parents=True)
    (root / "old/archive.bin").write_bytes(b"archived " * 100_000)
    result = run_cli("sync", "server", root, "--port", "0", data_dir=tmp_path / "d")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "--adopt" in result.stderr
    src = tmp_path / "src"
    src.mkdir()
    (src / "same.bin").write_bytes(b"archived " * 100_000)
    token = sync_token(tmp_path / "d")
    args: list[str | Path] = ["sync", "server", root, "--port", "0", "--adopt"]
    shared = {"HOMEKEEP_SYNC_DEDUP_ACROSS_CLIENTS": "true"}  # "old" counts for "new" too
    with running(args, data_dir=tmp_path / "d", env=shared) as srv:
        summary = push(src, SyncServer(srv, root, tmp_path / "d", token), "new")
    assert summary["data_bytes_sent"] == 0
    assert (root / "new/same.bin").read_bytes() == (src / "same.bin").read_bytes()
    assert (root / "old/archive.bin").exists()


def test_status_and_log_show_clients_and_history(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "report.pdf").write_bytes(b"%PDF" + bytes(range(256)) * 400)
    with sync_server(tmp_path) as srv:
        push(src, srv, "desk")
        (src / "report.pdf").rename(src / "final.pdf")
        push(src, srv, "desk")
        status = run_cli("sync", "status", srv.root, "--json", data_dir=srv.data_dir)
        log = run_cli("sync", "log", srv.root, "--json", data_dir=srv.data_dir)
        table = run_cli("sync", "log", srv.root, data_dir=srv.data_dir)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert [c["name"] for c in info["clients"]] == ["desk"]
    assert info["clients"][0]["files"] == 1
    events = json.loads(log.stdout)
    assert events[0]["action"] == "rename"
    assert events[0]["dest"] == "final.pdf"
    created = next(e for e in events if e["action"] == "create")
    assert created["client"] == "desk"
    assert created["size"] == 4 + 256 * 400
    assert created["data_bytes"] > 0
    assert "rename" in table.stdout


def test_status_of_a_folder_that_is_no_target_is_one_line(tmp_path: Path) -> None:
    result = run_cli("sync", "status", tmp_path, data_dir=tmp_path / "d")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "homekeep sync server" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--server", "ftp://x"], 2, "http://"),
        ([], 2, "--server"),
        (["--server", "http://127.0.0.1:{port}"], 7, "is the server running"),
        (["--server", "http://127.0.0.1:{port}", "--name", "../up"], 2, "client name"),
    ],
)
def test_client_mistakes_are_one_line_errors(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    port = free_port()
    result = run_cli(
        "sync", "push", tmp_path, *(a.format(port=port) for a in args), data_dir=tmp_path / "d"
    )
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: ")
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_token_says_how_to_get_one(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with sync_server(tmp_path) as srv:
        result = run_cli(
            "sync",
            "push",
            src,
            "--server",
            srv.url,
            "--token",
            "hk_nope",
            data_dir=tmp_path / "c",
        )
    assert result.returncode == 5
    assert "homekeep token create" in result.stderr


def test_mounted_in_homekeep_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root = tmp_path / "received"
    token = sync_token(data)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub/a.txt").write_text("via serve")
    with running(
        ["serve", "--port", "0"], data_dir=data, env={"HOMEKEEP_SYNC_ROOT": str(root)}
    ) as srv:
        summary = push(src, SyncServer(srv, root, data, token), "phone")
        hello = srv.client(token).get("/api/sync/v1/hello").json()
    assert summary["files_sent"] == 1
    assert snapshot(root / "phone") == snapshot(src)
    assert hello["protocol"] == 1
    assert hello["chunking"]["algorithm"] == "fastcdc2020"
