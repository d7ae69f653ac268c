"""The CLI as a person runs it: help, version, config files and their errors, tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homekeep import __version__
from tests.support import run_cli


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_help_lists_core_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "config", "token"):
        assert command in result.stdout


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_unknown_command_is_one_line() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "frobnicate" in one_error_line(result.stderr)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server\nport = 1", "not valid TOML"),
        ("[server]\nprot = 8080\n", "unknown key 'prot'"),
        ('[server]\nport = "eighty"\n', "[server] port"),
        ("[server]\nport = 70000\n", "[server] port"),
        ("[nosuch]\nx = 1\n", "unknown section [nosuch]"),
        ('[logging]\nlevel = "loud"\n', "[logging] level"),
        ("server = 3\n", "[server] must be a table"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    result = run_cli("--config", config, "config", "show")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert str(config) in line
    assert expected in line


def test_missing_config_file_says_how_to_create_it(tmp_path: Path) -> None:
    result = run_cli("--config", tmp_path / "nope.toml", "config", "show")
    assert result.returncode == 2
    assert "homekeep config init" in one_error_line(result.stderr)


def test_env_override_and_its_errors(tmp_path: Path) -> None:
    ok = run_cli("config", "show", env={"HOMEKEEP_SERVER_PORT": "9001"})
    assert ok.returncode == 0, ok.stderr
    assert "port = 9001" in ok.stdout
    bad = run_cli("config", "show", env={"HOMEKEEP_SERVER_PORT": "lots"})
    assert bad.returncode == 2
    assert "HOMEKEEP_SERVER_PORT" in one_error_line(bad.stderr)
    unknown = run_cli("config", "show", env={"HOMEKEEP_SERVER_PROT": "1"})
    assert unknown.returncode == 2
    assert "no key 'prot'" in one_error_line(unknown.stderr)


def test_config_init_writes_commented_defaults_that_load(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "homekeep.toml"
    result = run_cli("config", "init", path)
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert "[server]" in text
    assert "# port = 8080" in text
    assert "# Address to listen on." in text
    shown = run_cli("--config", path, "config", "show")
    assert shown.returncode == 0, shown.stderr
    assert 'host = "127.0.0.1"' in shown.stdout
    again = run_cli("config", "init", path)
    assert again.returncode == 4
    assert "--force" in one_error_line(again.stderr)
    assert run_cli("config", "init", "--force", path).returncode == 0


def test_config_show_reflects_file_values(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\nport = 8123\nhost = "0.0.0.0"\n[logging]\nbackup_count = 2\n')
    result = run_cli("--config", config, "config", "show")
    assert result.returncode == 0
    assert "port = 8123" in result.stdout
    assert 'host = "0.0.0.0"' in result.stdout
    assert "backup_count = 2" in result.stdout


def test_tokens_create_list_revoke(data_dir: Path) -> None:
    created = run_cli("token", "create", "laptop", "--scope", "all", "--json", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["token"]
    assert secret.startswith("hk_")
    listed = run_cli("token", "list", "--json", data_dir=data_dir)
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["scopes"], r["revoked_at"]) for r in rows] == [("laptop", ["all"], None)]
    assert secret not in listed.stdout
    assert secret not in (data_dir / "homekeep.sqlite").read_bytes().decode("latin-1")
    dup = run_cli("token", "create", "laptop", "--scope", "all", data_dir=data_dir)
    assert dup.returncode == 4
    one_error_line(dup.stderr)
    assert run_cli("token", "revoke", "laptop", data_dir=data_dir).returncode == 0
    rows = json.loads(run_cli("token", "list", "--json", data_dir=data_dir).stdout)
    assert rows[0]["revoked_at"] is not None
    gone = run_cli("token", "revoke", "laptop", data_dir=data_dir)
    assert gone.returncode == 3
    one_error_line(gone.stderr)


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["token", "create", "x"], 2, "--scope"),
        (["token", "create", "x", "--scope", "nosuch"], 2, "unknown scope 'nosuch'"),
        (["token", "create", "bad name!", "--scope", "all"], 2, "invalid token name"),
    ],
)
def test_token_create_errors(data_dir: Path, args: list[str], code: int, expected: str) -> None:
    result = run_cli(*args, data_dir=data_dir)
    assert result.returncode == code
    assert expected in one_error_line(result.stderr)


def test_corrupt_core_database_is_a_clear_error(data_dir: Path) -> None:
    (data_dir / "homekeep.sqlite").write_bytes(b"this is not sqlite" * 100)
    result = run_cli("token", "list", data_dir=data_dir)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "homekeep.sqlite" in line
    assert "move it aside" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server\n")
    result = run_cli("--debug", "--config", config, "config", "show")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
