"""The music commands as a user runs them: real subprocesses, JSON and one-line errors."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.music import media
from tests.support import HOMEKEEP, clean_env, run_cli


def _json(*args: str | Path, data_dir: Path) -> Any:
    result = run_cli("music", *args, "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path],
            covers: dict[str, bytes]) -> tuple[Path, Path]:  # fmt: skip
    """A small library with every kind of problem, scanned once through the CLI."""
    base = tmp_path_factory.mktemp("cli")
    root, data = base / "music", base / "data"
    media.write_track(clips["flac"], "flac", root / "Good" / "01.flac",
                      {"title": "One", "artist": "A", "album": "Good", "album_artist": "A",
                       "track": 1}, ((3, covers["large"]),))  # fmt: skip
    media.write_track(clips["mp3"], "mp3", root / "Poor" / "01.mp3", {"artist": "B"},
                      ((3, covers["small"]),))  # fmt: skip
    (root / "Poor" / "broken.mp3").write_bytes(b"\x00" * 100)
    (root / "Poor" / "cover.txt").write_text("not a cover")
    result = run_cli("music", "scan", root, data_dir=data)
    assert result.returncode == 0, result.stderr
    assert "new 4, changed 0, moved 0, deleted 0, unchanged 0; tags read 3" in result.stdout
    for step in ("walk", "stat and diff", "tag read", "artwork", "database"):
        assert step in result.stdout
    return root, data


def test_scan_json_and_rescan(scanned: tuple[Path, Path]) -> None:
    root, data = scanned
    out = _json("scan", root, data_dir=data)
    assert out["counts"]["unchanged"] == 4
    assert out["counts"]["tags_read"] == 0
    assert set(out["timings"]) == {"walk", "stat_diff", "tag_read", "artwork", "database"}


def test_scan_uses_configured_roots(scanned: tuple[Path, Path], tmp_path: Path) -> None:
    root, data = scanned
    config = tmp_path / "config.toml"
    config.write_text(f"[music]\nroots = [{json.dumps(str(root))}]\n")
    result = run_cli("--config", config, "music", "scan", "--json", data_dir=data)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["roots"] == [str(root)]


def test_scan_without_roots_rescans_the_known_ones(scanned: tuple[Path, Path]) -> None:
    out = _json("scan", data_dir=scanned[1])
    assert out["roots"] == [str(scanned[0])]
    assert out["counts"]["unchanged"] == 4


def test_report_types(scanned: tuple[Path, Path]) -> None:
    rows = _json("report", "types", data_dir=scanned[1])
    found = {(r["ext"], r["kind"], r["detected"]): r["files"] for r in rows}
    assert found[("flac", "audio", "flac")] == 1
    assert found[("mp3", "audio", "mp3")] == 1
    assert found[("mp3", "audio", "unreadable")] == 1
    assert found[("txt", "text", None)] == 1
    human = run_cli("music", "report", "types", data_dir=scanned[1])
    assert ".flac" in human.stdout
    assert "4 files" in human.stdout


def test_report_missing_tags(scanned: tuple[Path, Path]) -> None:
    rows = _json("report", "missing-tags", data_dir=scanned[1])
    assert len(rows) == 1
    assert rows[0]["missing"] == ["title", "album"]
    assert rows[0]["warnings"] == ["album_artist", "track"]
    only_artist = _json("report", "missing-tags", "--fields", "artist", data_dir=scanned[1])
    assert [r["level"] for r in only_artist] == ["warning"]


def test_report_artwork(scanned: tuple[Path, Path]) -> None:
    rows = _json("report", "artwork", data_dir=scanned[1])
    assert [(r["problem"], r["width"]) for r in rows] == [("small", 120)]
    assert _json("report", "artwork", "--min-size", "100", data_dir=scanned[1]) == []
    strict = _json("report", "artwork", "--min-size", "1000", data_dir=scanned[1])
    assert len(strict) == 2


def test_report_errors_and_timings(scanned: tuple[Path, Path]) -> None:
    rows = _json("report", "errors", data_dir=scanned[1])
    assert [r["path"].endswith("Poor/broken.mp3") for r in rows] == [True]
    assert rows[0]["level"] == "error"
    scans = _json("timings", data_dir=scanned[1])
    assert scans[-1]["counts"]["new"] == 4
    human = run_cli("music", "timings", data_dir=scanned[1])
    assert "tag read" in human.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["scan", "{tmp}/nope"], "does not exist", 3),
        (["scan"], "no music roots to scan", 2),
        (["scan", "{tmp}/file.mp3"], "is not a folder", 2),
        (["report", "missing-tags", "--fields", "title,bogus"], "unknown tag field 'bogus'", 2),
        (["report", "artwork", "--min-size", "-1"], "--min-size", 2),
        (["report", "nothing"], "No such command", 2),
        (["timings"], "no scans yet", 3),
    ],
)
def test_errors_are_one_line(args: list[str], message: str, code: int, tmp_path: Path) -> None:
    (tmp_path / "file.mp3").write_bytes(b"x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_cli("music", *argv, data_dir=tmp_path / "data")
    assert result.returncode == code
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_corrupt_database_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "data" / "music" / "music.sqlite"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite" * 100)
    result = run_cli("music", "report", "types", data_dir=tmp_path / "data")
    assert result.returncode != 0
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(db).execute("SELECT 1 FROM files").fetchall()


def test_roots_list_and_remove(tmp_path: Path, clips: dict[str, Path]) -> None:
    data = tmp_path / "data"
    for name in ("a", "b"):
        media.write_track(clips["mp3"], "mp3", tmp_path / name / "1.mp3",
                          {"title": name, "artist": name, "album": name})  # fmt: skip
    assert run_cli("music", "scan", tmp_path / "a", tmp_path / "b", data_dir=data).returncode == 0
    roots = _json("roots", "list", data_dir=data)
    assert [(r["path"], r["files"]) for r in roots] == [
        (str(tmp_path / "a"), 1), (str(tmp_path / "b"), 1),
    ]  # fmt: skip
    removed = run_cli("music", "roots", "remove", tmp_path / "a", data_dir=data)
    assert removed.returncode == 0, removed.stderr
    assert "1 files" in removed.stdout
    assert (tmp_path / "a" / "1.mp3").exists()
    assert [r["path"] for r in _json("roots", "list", data_dir=data)] == [str(tmp_path / "b")]
    types = _json("report", "types", data_dir=data)
    assert sum(t["files"] for t in types) == 1
    missing = run_cli("music", "roots", "remove", tmp_path / "zzz", data_dir=data)
    assert missing.returncode == 3
    assert missing.stderr.startswith("error: ")
    assert "not a music root" in missing.stderr


def test_an_unreadable_folder_keeps_what_it_held(tmp_path: Path, clips: dict[str, Path]) -> None:
    root, data = tmp_path / "music", tmp_path / "data"
    media.write_track(clips["mp3"], "mp3", root / "Locked" / "1.mp3",
                      {"title": "kept", "artist": "A", "album": "X"})  # fmt: skip
    assert run_cli("music", "scan", root, data_dir=data).returncode == 0
    cmd = [*HOMEKEEP, "--data-dir", str(data), "music", "scan", str(root), "--json"]
    if os.geteuid() == 0:  # root reads any folder: drop the capabilities that allow it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]
    (root / "Locked").chmod(0)
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, env=clean_env(), timeout=120, check=False
        )
    finally:
        (root / "Locked").chmod(0o755)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert (counts["unreadable_folders"], counts["deleted"], counts["tracks"]) == (1, 0, 1)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('critical_tags = ["title", "mood"]', "unknown tag 'mood'"),
        ("cover_priority = []", "at least one cover source"),
        ("thumbnail_size = 0", "thumbnail_size"),
        ("workers = -1", "workers"),
        ('roots = "not a list"', "roots"),
        ("colour = 1", "colour"),
    ],
)
def test_config_errors_are_one_line(toml: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[music]\n{toml}\n")
    result = run_cli("--config", config, "music", "report", "types", data_dir=tmp_path / "d")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_second_scan_at_once_is_refused(scanned: tuple[Path, Path]) -> None:
    root, data = scanned
    with (data / "music" / "scan.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run_cli("music", "scan", root, data_dir=data)
    assert result.returncode == 4
    assert result.stderr.strip() == "error: another music scan is running; wait for it to finish"


def test_scan_summary_counts_one_in_the_singular(tmp_path: Path, clips: dict[str, Path]) -> None:
    root = tmp_path / "music"
    media.write_track(clips["mp3"], "mp3", root / "one.mp3", {"title": "T", "artist": "A"})
    result = run_cli("music", "scan", root, data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "library: 1 track, 1 album, 1 artist; 0 unreadable files, 0 warnings" in result.stdout
