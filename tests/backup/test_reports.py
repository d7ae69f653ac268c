"""The growth plot, the web page and JSON API, drive stats, and the config creator."""

from __future__ import annotations

import json
import os
import struct
import tomllib
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.backup.conftest import Home
from tests.support import add_user, create_token, running

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of a PNG; asserts it is a real PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out: dict[str, str] = {}
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        assert zlib.crc32(kind + body) == crc
        if kind == b"tEXt":
            key, value = body.split(b"\0", 1)
            out[key.decode()] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, rest = body.split(b"\0", 1)
            compressed = rest[0]
            _, _, rest = rest[2:].split(b"\0", 2)
            text = rest.split(b"\0", 1)[-1] if b"\0" in rest else rest
            out[key.decode()] = (zlib.decompress(text) if compressed else text).decode()
        pos += 12 + length
    assert kind == b"IEND"
    return out


def plotted(data: bytes) -> dict[str, list[dict[str, Any]]]:
    points: dict[str, list[dict[str, Any]]] = json.loads(png_text(data)["Description"])
    return points


def test_plot_has_one_point_per_run(home: Home, source: Path) -> None:
    home.write(
        [
            {"name": "snap", "source": str(source), "method": "snapshot"},
            {"name": "docs", "source": str(source)},
        ]
    )
    for i in range(3):
        (source / f"grow{i}.bin").write_bytes(b"g" * 1000 * (i + 1))
        assert home.cli("backup", "run", "snap").returncode == 0
    assert home.cli("backup", "run", "docs").returncode == 0
    out = home.tmp / "growth.png"
    result = home.cli("backup", "plot", "snap", "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out} (3 runs)"
    points = plotted(out.read_bytes())["snap"]
    assert len(points) == 3
    assert points[0]["relative"] == 1.0
    assert points[1]["relative"] > 1.0
    assert [p["bytes_added"] for p in points[1:]] == [2000, 3000]
    assert [p["files"] for p in points] == [6, 7, 8]
    every = home.cli("backup", "plot", "--all", "-o", out)
    assert every.returncode == 0
    assert {k: len(v) for k, v in plotted(out.read_bytes()).items()} == {"snap": 3, "docs": 1}
    bad = home.cli("backup", "plot", "snap", "-o", home.tmp / "no" / "dir" / "x.png")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1


READS = [
    "/api/backup/jobs",
    "/api/backup/jobs/docs/runs",
    "/api/backup/plot.png",
    "/api/backup/plot.png?job=docs",
]


def test_web_page_and_api_need_a_backup_token(home: Home, source: Path) -> None:
    home.write([{"name": "docs", "source": str(source), "every": 6, "units": "Hours"}])
    assert home.cli("backup", "run", "docs").returncode == 0
    token = create_token(home.data, "viewer", "backup")
    other = create_token(home.data, "player", "music")
    add_user(home.data, "admin", "admin password", admin=True)
    with running(["--config", home.config, "serve", "--port", "0"], data_dir=home.data) as srv:
        anonymous, stranger = srv.client(), srv.client(other)
        for path in READS:
            refused = anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["code"] == "unauthorized"
            assert str(source) not in refused.text
            assert stranger.get(path).json()["error"]["code"] == "forbidden", path
        # The page needs a login: without one, a redirect that shows nothing of the jobs.
        page = anonymous.get("/backup/")
        assert page.status_code == 302
        assert page.headers["location"].startswith("/login?next=")
        assert str(source) not in page.text
        client = srv.client(token)
        jobs = client.get("/api/backup/jobs").json()
        assert jobs[0]["last_run"]["result"] == "ok"
        assert jobs[0]["source"] == str(source)
        assert jobs[0]["schedule"] == "every 6 Hours"
        runs = client.get("/api/backup/jobs/docs/runs").json()
        assert len(runs) == 1
        png = client.get("/api/backup/plot.png")
        assert png.headers["content-type"] == "image/png"
        assert len(plotted(png.content)["docs"]) == 1
        missing = client.get("/api/backup/jobs/nope/runs")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        assert client.get("/api/backup/plot.png", params={"job": "nope"}).status_code == 404
        assert client.get("/api/backup/jobs/docs/runs", params={"limit": "x"}).status_code == 422


def test_growth_chart_is_kept_until_a_run_changes_it(home: Home, source: Path) -> None:
    home.write([{"name": "docs", "source": str(source)}])
    assert home.cli("backup", "run", "docs").returncode == 0
    token = create_token(home.data, "viewer", "backup")
    with running(["--config", home.config, "serve", "--port", "0"], data_dir=home.data) as srv:
        client = srv.client(token)
        first = client.get("/api/backup/plot.png")
        tag = first.headers["etag"]
        assert "no-cache" in first.headers["cache-control"]
        unchanged = client.get("/api/backup/plot.png", headers={"If-None-Match": tag})
        assert unchanged.status_code == 304
        assert unchanged.content == b""
        assert client.get("/api/backup/plot.png").content == first.content
        (source / "new.txt").write_text("more\n")
        assert home.cli("backup", "run", "docs").returncode == 0
        changed = client.get("/api/backup/plot.png", headers={"If-None-Match": tag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != tag
        assert len(plotted(changed.content)["docs"]) == 2


def test_run_over_http_needs_a_backup_token(home: Home, source: Path) -> None:
    import time

    home.write([{"name": "docs", "source": str(source)}])
    token = create_token(home.data, "cron-box", "backup")
    with running(["--config", home.config, "serve", "--port", "0"], data_dir=home.data) as srv:
        anonymous = srv.client().post("/api/backup/jobs/docs/run")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        client = srv.client(token)
        assert client.post("/api/backup/jobs/nope/run").status_code == 404
        started = client.post("/api/backup/jobs/docs/run")
        assert started.status_code == 202
        assert started.json() == {"job": "docs", "status": "started"}
        runs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runs = client.get("/api/backup/jobs/docs/runs").json()
            if runs and runs[-1]["result"] != "running":
                break
            time.sleep(0.1)
        assert runs[-1]["result"] == "ok"
        assert runs[-1]["trigger"] == "api:cron-box"
    assert (home.root / "docs" / "a.txt").read_text() == "alpha\n"


def test_stats_reports_free_space_and_speed(home: Home, tmp_path: Path) -> None:
    result = home.cli("backup", "stats", tmp_path, "--size", "4", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["free"] > 0
    assert stats["bytes"] == 4 * 2**20
    assert stats["write_mb_s"] > 0
    assert stats["read_mb_s"] > 0
    assert list(tmp_path.iterdir()) == []  # the test file is gone
    text = home.cli("backup", "stats", tmp_path, "--no-speed")
    assert " free of " in text.stdout
    missing = home.cli("backup", "stats", tmp_path / "nope")
    assert missing.returncode == 2


def test_stats_reads_from_the_device_not_the_page_cache(home: Home, tmp_path: Path) -> None:
    # mincore after fsync + DONTNEED: none of the file is cached when the read starts.
    disk = json.loads(home.cli("backup", "stats", tmp_path, "--size", "8", "--json").stdout)
    assert disk["cached_before_read"] == 0.0
    # On tmpfs the pages are the storage: the tool says the read is memory speed.
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        pytest.skip("no writable tmpfs")
    ram = home.cli("backup", "stats", shm, "--size", "4")
    assert ram.returncode == 0, ram.stderr
    assert "page cache dropped" not in ram.stdout
    assert "the read speed is memory speed" in ram.stdout


def test_init_from_flags_and_interactive(home: Home, source: Path) -> None:
    home.config.write_text(
        f'# my settings\n[server]\nport = 8099\n[backup]\nallowed_roots = ["{home.tmp}"]\n'
    )
    flags = home.cli(
        "backup",
        "init",
        "--name",
        "photos",
        "--source",
        source,
        "--method",
        "snapshot",
        "--every",
        "6",
        "--units",
        "Hours",
        "--exclude",
        "*.tmp",
        "--keep-daily",
        "7",
    )
    assert flags.returncode == 0, flags.stderr
    assert "added job photos (snapshot to " in flags.stdout
    asked = home.cli(
        "backup",
        "init",
        "--interactive",
        input=f"music\n{source}\n{home.tmp / 'm'}\nmirror\n2\nDays\n",
    )
    assert asked.returncode == 0, asked.stderr
    text = home.config.read_text()
    assert text.startswith("# my settings")
    saved = tomllib.loads(text)
    assert saved["server"]["port"] == 8099
    assert saved["backup"]["jobs"] == [
        {
            "name": "photos",
            "source": str(source),
            "method": "snapshot",
            "excludes": ["*.tmp"],
            "every": 6,
            "units": "Hours",
            "keep_daily": 7,
        },
        {"name": "music", "source": str(source), "target": str(home.tmp / "m"), "every": 2},
    ]
    again = home.cli("backup", "init", "--name", "photos", "--source", source)
    assert again.returncode == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x"], "give --source"),
        (["--name", "bad/name", "--source", "SRC"], "job name"),
        (["--name", "x", "--source", "/no/such/dir"], "not an existing directory"),
        (["--name", "x", "--source", "SRC", "--target", "C:\\Backups"], "not an absolute path"),
        (["--name", "x", "--source", "SRC", "--cron", "61 * * * *"], "cron"),
        (["--name", "x", "--source", "SRC", "--cron", "* * * * *", "--every", "2"], "either"),
    ],
)
def test_init_rejects_bad_input(home: Home, source: Path, args: list[str], message: str) -> None:
    home.write([])
    result = home.cli("backup", "init", *[str(source) if a == "SRC" else a for a in args])
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert tomllib.loads(home.config.read_text())["backup"]["jobs"] == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '[backup]\njobs = [{name = "a", source = "/x"}, {name = "a", source = "/y"}]',
            "two jobs are named",
        ),
        ('[backup]\njobs = [{name = "a", source = "/x", units = "Weeks"}]', "units must be"),
        (
            '[backup]\njobs = [{name = "a", source = "photos"}]',
            "jobs.0.source: source must be an absolute path, got 'photos'",
        ),
        ('[backup]\njobs = [{name = "a", source = "/x", cron = "1 2"}]', "cron expression, got"),
        ('[backup]\njobs = [{name = "a", source = "/x", colour = "red"}]', "colour"),
        ('[backup]\nexit_codes = {rsync = {"x" = "ok"}}', "not a number"),
        ('[backup]\nexit_codes = {rsync = {"23" = "fine"}}', "exit_codes"),
    ],
)
def test_bad_config_is_one_line_error(home: Home, config: str, message: str) -> None:
    home.config.write_text(config)
    result = home.cli("backup", "list")
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "value error" not in result.stderr.lower()  # pydantic's wording stays out
    assert result.stderr.count(", got ") <= 1  # the bad value is named once


@pytest.mark.browser
def test_page_in_a_browser_shows_jobs_and_chart(home: Home, source: Path, browser: Browser) -> None:
    home.write([{"name": "docs", "source": str(source)}])
    assert home.cli("backup", "run", "docs").returncode == 0
    add_user(home.data, "admin", "admin password", admin=True)
    with running(["--config", home.config, "serve", "--port", "0"], data_dir=home.data) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/backup/")
        page.fill("#name", "admin")  # the login page first, then back here
        page.fill("#password", "admin password")
        page.click("#login")
        page.wait_for_url(srv.url + "/backup/")
        page.wait_for_selector('tr[data-job="docs"] td.result', timeout=20_000)
        assert page.locator('tr[data-job="docs"] td.result').inner_text() == "ok"
        assert str(source) in page.locator('tr[data-job="docs"]').inner_text()
        page.wait_for_function(
            "document.getElementById('growth').complete"
            " && document.getElementById('growth').naturalWidth > 0",
            timeout=20_000,
        )
        assert page.evaluate("document.getElementById('growth').naturalWidth") == 900
