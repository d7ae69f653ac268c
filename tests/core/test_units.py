"""`homekeep service`: a systemd unit for every long-running command, checked by systemd itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import run_cli

NEEDS_FOLDER = {"sync-server", "sync-watch"}
EXPECTED = {
    "serve",
    "backup-daemon",
    "sync-server",
    "sync-watch",
    "convert-server",
    "convert-worker",
    "convert-watch",
    "pool-serve",
}


def long_running(data_dir: Path) -> list[dict[str, object]]:
    done = run_cli("service", "list", "--json", data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, object]] = json.loads(done.stdout)
    return listed


def verify(unit: Path, *, system: bool, runtime: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd; make setup installs it)")
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    cmd = [analyze, *([] if system else ["--user"]), "verify", str(unit)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr, done.stderr


def test_every_long_running_command_is_listed(data_dir: Path) -> None:
    assert {str(s["name"]) for s in long_running(data_dir)} == EXPECTED


@pytest.mark.parametrize("system", [False, True], ids=["user", "system"])
def test_each_unit_passes_systemd_analyze_verify(
    data_dir: Path, tmp_path: Path, system: bool
) -> None:
    units = tmp_path / "units"
    folder = tmp_path / "a folder with spaces & 100%"
    folder.mkdir()
    for service in long_running(data_dir):
        name = str(service["name"])
        extra = [str(folder)] if name in NEEDS_FOLDER else []
        args = ["service", "install", name, *extra, "--no-start", "--unit-dir", str(units)]
        done = run_cli(*args, *(["--system"] if system else []), data_dir=data_dir)
        assert done.returncode == 0, done.stderr
        unit = units / f"homekeep-{name}.service"
        text = unit.read_text()
        assert f"--data-dir {data_dir.resolve()}" in text or f'"{data_dir.resolve()}"' in text
        assert ("User=" in text) is system
        if extra:
            assert '"' in text  # quoted for its spaces
            assert "100%%" in text  # % escaped: systemd reads %1 as a specifier
        verify(unit, system=system, runtime=tmp_path / "run")
    for service in long_running(data_dir):
        done = run_cli(
            "service", "uninstall", str(service["name"]), "--no-stop", "--unit-dir", str(units),
            data_dir=data_dir,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert list(units.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["install", "nosuch", "--no-start"], "no long-running command 'nosuch'"),
        (["install", "sync-watch", "--no-start"], "sync-watch needs FOLDER"),
        (["install", "serve", "--no-start", "--instance", "../x"], "--instance is"),
        (["install", "serve"], "systemd is not running here"),
        (["uninstall", "serve"], "is not installed"),
    ],
)
def test_bad_service_requests(
    data_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    if args == ["install", "serve"] and Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs on this machine: the install would really start a service")
    done = run_cli("service", *args, "--unit-dir", str(tmp_path / "units"), data_dir=data_dir)
    assert done.returncode != 0
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert not (tmp_path / "units").exists() or list((tmp_path / "units").iterdir()) == []


def test_convert_worker_scope(data_dir: Path) -> None:
    ok = run_cli("token", "create", "w1", "--scope", "convert-worker", data_dir=data_dir)
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("token", "create", "w2", "--scope", "convert-boss", data_dir=data_dir)
    assert bad.returncode == 2
    assert "convert-worker" in bad.stderr  # the error lists the scopes there are
