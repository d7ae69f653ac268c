"""Shared folders end to end: real clients (the CLI) and a real server on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import HOMEKEEP, clean_env, run_cli
from tests.sync.helpers import SyncServer, sync_server, wait_until

FOLDER = "docs"
OWN = {".homekeep-folder", ".homekeep-versions", ".homekeep-tmp"}


@pytest.fixture
def shared(tmp_path: Path) -> Any:
    with sync_server(tmp_path) as srv:
        result = run_cli("sync", "share", FOLDER, srv.root, data_dir=srv.data_dir)
        assert result.returncode == 0, result.stderr
        assert "shared folder docs" in result.stdout
        yield srv


def tree(root: Path) -> dict[str, str]:
    """What a user sees in a folder (our own files aside): path -> content or '<dir>'."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts and rel_dir.parts[0] in OWN:
            continue
        for name in dirnames + filenames:
            rel = (rel_dir / name).as_posix()
            if rel.split("/")[0] in OWN:
                continue
            full = Path(dirpath) / name
            try:
                out[rel] = "<dir>" if full.is_dir() else full.read_text()
            except FileNotFoundError:
                continue  # deleted while we looked (a watching client at work)
    return out


def run_pass(
    folder: Path, srv: SyncServer, device: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """One two-way pass of ``folder`` as ``device`` (`sync push --folder docs --json`)."""
    return run_cli(
        "sync",
        "push",
        folder,
        "--server",
        srv.url,
        "--token",
        srv.token,
        "--name",
        device,
        "--folder",
        FOLDER,
        "--json",
        *extra,
        data_dir=folder.parent / f"data-{device}",
    )


def sync(folder: Path, srv: SyncServer, device: str, *extra: str) -> dict[str, Any]:
    """A pass that must succeed; its JSON summary."""
    result = run_pass(folder, srv, device, *extra)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def clients(tmp_path: Path, *names: str) -> list[Path]:
    made = []
    for name in names:
        (tmp_path / name).mkdir()
        made.append(tmp_path / name)
    return made


def settle() -> None:
    time.sleep(0.02)  # a later edit gets a later mtime on every filesystem we run on


def test_changes_travel_both_ways_and_trees_converge(shared: SyncServer, tmp_path: Path) -> None:
    a, b = clients(tmp_path, "a", "b")
    (a / "notes.txt").write_text("from a")
    (a / "sub").mkdir()
    (a / "sub" / "x.txt").write_text("x")
    sync(a, shared, "laptop")
    got = sync(b, shared, "desk")
    assert tree(b) == tree(a) == {"notes.txt": "from a", "sub": "<dir>", "sub/x.txt": "x"}
    assert got["received"]["files"] == 2
    (b / "notes.txt").write_text("edited on b")
    (b / "sub" / "x.txt").unlink()
    sync(b, shared, "desk")
    sync(a, shared, "laptop")
    assert tree(a) == tree(b) == {"notes.txt": "edited on b", "sub": "<dir>"}
    assert tree(shared.root / FOLDER) == tree(a)
    # what b's pass replaced on a is kept in a's versions folder
    listed = run_cli("sync", "versions", a, "--json", data_dir=tmp_path / "data-laptop")
    assert listed.returncode == 0, listed.stderr
    kept = {v["path"] for v in json.loads(listed.stdout)}
    assert kept == {"notes.txt", "sub/x.txt"}


def test_concurrent_edits_keep_both_with_a_conflict_copy(
    shared: SyncServer, tmp_path: Path
) -> None:
    a, b = clients(tmp_path, "a", "b")
    (a / "plan.txt").write_text("base")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    (a / "plan.txt").write_text("a's edit")
    settle()
    (b / "plan.txt").write_text("b's edit, newer")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    sync(a, shared, "laptop")
    final = tree(a)
    assert final == tree(b) == tree(shared.root / FOLDER)
    assert final["plan.txt"] == "b's edit, newer"
    copies = [p for p in final if ".sync-conflict-" in p]
    assert len(copies) == 1
    assert final[copies[0]] == "a's edit"
    assert copies[0].startswith("plan.sync-conflict-")
    assert copies[0].endswith("-laptop.txt")  # named after the device whose edit lost
    listed = run_cli("sync", "conflicts", a, "--json", data_dir=tmp_path / "data-laptop")
    assert json.loads(listed.stdout) == [{"path": "plan.txt", "copy": copies[0]}]


def test_the_same_change_on_both_sides_is_no_conflict(shared: SyncServer, tmp_path: Path) -> None:
    a, b = clients(tmp_path, "a", "b")
    (a / "same.txt").write_text("identical")
    (b / "same.txt").write_text("identical")
    (a / "differs.txt").write_text("a")
    settle()
    (b / "differs.txt").write_text("b")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    sync(a, shared, "laptop")
    final = tree(a)
    assert final == tree(b)
    assert final["same.txt"] == "identical"
    assert sorted(p for p in final if ".sync-conflict-" in p) == [
        next(p for p in final if p.startswith("differs.sync-conflict-"))
    ]


@pytest.mark.parametrize("deleter", ["first", "second"])
def test_an_edit_beats_a_delete(shared: SyncServer, tmp_path: Path, deleter: str) -> None:
    a, b = clients(tmp_path, "a", "b")
    (a / "keep.txt").write_text("v1")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    (a / "keep.txt").unlink()
    (b / "keep.txt").write_text("v2 from b")
    order = [(a, "laptop"), (b, "desk")] if deleter == "first" else [(b, "desk"), (a, "laptop")]
    for folder, device in [*order, *order]:
        sync(folder, shared, device)
    assert tree(a) == tree(b) == {"keep.txt": "v2 from b"}


def test_a_rename_on_one_side_and_an_edit_on_the_other(shared: SyncServer, tmp_path: Path) -> None:
    a, b = clients(tmp_path, "a", "b")
    (a / "draft.txt").write_text("v1")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    (a / "draft.txt").rename(a / "final.txt")
    (b / "draft.txt").write_text("v2 from b")
    sync(b, shared, "desk")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    assert tree(a) == tree(b) == {"final.txt": "v2 from b"}


def test_a_folder_deleted_while_the_other_side_adds_inside_it(
    shared: SyncServer, tmp_path: Path
) -> None:
    a, b = clients(tmp_path, "a", "b")
    (a / "d").mkdir()
    (a / "d" / "old.txt").write_text("old")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    for p in (a / "d").iterdir():
        p.unlink()
    (a / "d").rmdir()
    (b / "d" / "new.txt").write_text("new")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    sync(a, shared, "laptop")
    assert tree(a) == tree(b) == {"d": "<dir>", "d/new.txt": "new"}


def test_a_case_only_rename(shared: SyncServer, tmp_path: Path) -> None:
    a, b = clients(tmp_path, "a", "b")
    (a / "Readme.md").write_text("hi")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    (a / "Readme.md").rename(a / "README.md")
    sync(a, shared, "laptop")
    sync(b, shared, "desk")
    assert tree(b) == {"README.md": "hi"}


def test_an_edit_on_the_servers_copy_reaches_the_clients(
    shared: SyncServer, tmp_path: Path
) -> None:
    (a,) = clients(tmp_path, "a")
    (a / "a.txt").write_text("from a")
    sync(a, shared, "laptop")
    on_server = shared.root / FOLDER
    (on_server / "a.txt").write_text("edited on the server")
    (on_server / "made-there.txt").write_text("new on the server")

    def arrived() -> bool:
        sync(a, shared, "laptop")
        return tree(a) == {"a.txt": "edited on the server", "made-there.txt": "new on the server"}

    assert wait_until(arrived, timeout=30, step=0.5), tree(a)


def test_a_mass_delete_stops_and_asks(shared: SyncServer, tmp_path: Path) -> None:
    (a,) = clients(tmp_path, "a")
    for i in range(20):
        (a / f"f{i}.txt").write_text(str(i))
    sync(a, shared, "laptop")
    for i in range(15):
        (a / f"f{i}.txt").unlink()
    result = run_pass(a, shared, "laptop")
    assert result.returncode != 0
    assert "--allow-mass-delete" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(tree(shared.root / FOLDER)) == 20
    sync(a, shared, "laptop", "--allow-mass-delete")
    assert len(tree(shared.root / FOLDER)) == 5


def test_a_folder_that_lost_its_marker_is_not_synced(shared: SyncServer, tmp_path: Path) -> None:
    (a,) = clients(tmp_path, "a")
    (a / "x.txt").write_text("x")
    sync(a, shared, "laptop")
    (a / ".homekeep-folder").unlink()
    (a / "x.txt").unlink()
    result = run_pass(a, shared, "laptop")
    assert result.returncode != 0
    assert "looks unmounted" in result.stderr
    assert tree(shared.root / FOLDER) == {"x.txt": "x"}


def _same_bytes(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir() if p.name not in OWN)
    if names != sorted(p.name for p in b.iterdir() if p.name not in OWN):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def test_a_receiving_client_fetches_only_the_chunks_it_lacks(
    shared: SyncServer, tmp_path: Path
) -> None:
    a, b = clients(tmp_path, "a", "b")
    big = os.urandom(3 << 20)
    (a / "video.bin").write_bytes(big)
    sync(a, shared, "laptop")
    first = sync(b, shared, "desk")["received"]
    assert first["bytes_fetched"] == len(big)
    # a copy, a rename, and an insertion into the middle of a new version of the file
    shutil.copy(a / "video.bin", a / "copy.bin")
    (a / "video.bin").rename(a / "moved.bin")
    (a / "edited.bin").write_bytes(big[: 1 << 20] + b"a few new bytes" + big[1 << 20 :])
    sync(a, shared, "laptop")
    second = sync(b, shared, "desk")["received"]
    assert _same_bytes(a, b)
    assert second["files"] == 3
    assert second["bytes_fetched"] < 300_000  # the chunks around the insertion, no more
    assert second["bytes_reused"] >= 3 * len(big) - 300_000


def test_a_receiver_killed_mid_file_leaves_no_torn_file_and_resumes(
    shared: SyncServer, tmp_path: Path
) -> None:
    a, b = clients(tmp_path, "a", "b")
    data = os.urandom(96 << 20)
    (a / "large.bin").write_bytes(data)
    sync(a, shared, "laptop")
    args = ["sync", "pull", str(b), "--server", shared.url, "--token", shared.token]
    args += ["--name", "desk", "--folder", FOLDER]
    cmd = [*HOMEKEEP, "--data-dir", str(tmp_path / "data-desk"), *args]
    proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.DEVNULL)
    partial = b / ".homekeep-tmp"
    try:
        assert wait_until(
            lambda: any(p.stat().st_size > 0 for p in partial.glob("*")), timeout=60, step=0.005
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (b / "large.bin").exists()
    again = run_cli(*args, data_dir=tmp_path / "data-desk")
    assert again.returncode == 0, again.stderr
    assert (b / "large.bin").read_bytes() == data
    assert not partial.exists()
