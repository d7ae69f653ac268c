"""`homekeep images ...` through the real CLI, against a real server and data dir."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.images import samples
from tests.images.conftest import Hosted
from tests.support import HOMEKEEP, clean_env, run_cli


def test_upload_prints_each_link_and_local_commands_see_them(
    hosted: Hosted, tmp_path: Path
) -> None:
    a, b = tmp_path / "[red]a.png", tmp_path / "b photo.jpg"
    a.write_bytes(samples.png(seed=200))
    b.write_bytes(samples.encode("JPEG", seed=200))
    result = run_cli(
        "images", "upload", a, b, "--server", hosted.server.url, "--token", hosted.token
    )
    assert result.returncode == 0, result.stderr
    urls = result.stdout.split()
    assert len(urls) == 2
    assert urls[0].endswith(".png")
    assert urls[1].endswith(".jpg")
    assert httpx.get(urls[0]).content == a.read_bytes()
    image_id = urls[1].rsplit("/", 1)[1].split(".")[0]

    listed = run_cli("images", "list", "--json", "--limit", "5000", data_dir=hosted.data_dir)
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)["images"]}
    assert rows[image_id]["file_name"] == "b photo.jpg"
    table = run_cli("images", "list", "--limit", "3", data_dir=hosted.data_dir)
    assert f"{image_id}.jpg" in table.stdout
    assert "[red]a.png" in table.stdout  # names are shown as they are, not as markup

    info = run_cli("images", "info", image_id, "--json", data_dir=hosted.data_dir)
    assert json.loads(info.stdout)["mime_type"] == "image/jpeg"
    plain = run_cli("images", "info", image_id, data_dir=hosted.data_dir)
    assert "file_name" in plain.stdout
    assert "b photo.jpg" in plain.stdout

    gone = run_cli("images", "delete", image_id, data_dir=hosted.data_dir)
    assert gone.returncode == 0
    assert gone.stdout.strip() == f"deleted {image_id}"
    assert httpx.get(urls[1]).status_code == 404
    again = run_cli("images", "delete", image_id, data_dir=hosted.data_dir)
    assert again.returncode == 3
    assert again.stderr.startswith("error: no image")


def test_upload_json_output(hosted: Hosted, tmp_path: Path) -> None:
    a = tmp_path / "a.gif"
    a.write_bytes(samples.animated_gif())
    result = run_cli(
        "images",
        "upload",
        a,
        "--json",
        "--expires-in",
        "600",
        "--server",
        hosted.server.url,
        "--token",
        hosted.token,
    )
    body = json.loads(result.stdout)
    assert body["mime_type"] == "image/gif"
    assert body["expires_at"] is not None


def test_upload_from_standard_input(hosted: Hosted) -> None:
    data = samples.encode("WEBP", seed=210)
    proc = subprocess.run(
        [*HOMEKEEP, "images", "upload", "-", "--server", hosted.server.url],
        input=data,
        capture_output=True,
        env=clean_env({"HOMEKEEP_TOKEN": hosted.token}),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.decode().strip()
    assert url.endswith(".webp")
    assert httpx.get(url).content == data


def test_upload_errors_are_one_line_each(hosted: Hosted, tmp_path: Path) -> None:
    good, bad = tmp_path / "ok.png", tmp_path / "evil.png"
    good.write_bytes(samples.png(seed=201))
    bad.write_bytes(samples.HTML)
    result = run_cli(
        "images",
        "upload",
        bad,
        tmp_path / "missing.png",
        good,
        "--server",
        hosted.server.url,
        "--token",
        hosted.token,
    )
    assert result.returncode == 2
    assert result.stdout.strip().endswith(".png")  # the good one still went up
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: {bad}: ")
    assert "not an image we host" in lines[0]
    assert lines[1].startswith(f"error: {tmp_path / 'missing.png'}: cannot read")
    assert lines[2] == "error: 2 of 3 files failed; see the lines above"
    assert "Traceback" not in result.stderr


def test_upload_without_token_or_server(hosted: Hosted, tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    a.write_bytes(samples.png(seed=202))
    no_token = run_cli("images", "upload", a, "--server", hosted.server.url)
    assert no_token.returncode == 5
    assert "missing token" in no_token.stderr
    down = run_cli("images", "upload", a, "--server", "http://127.0.0.1:9", "--token", "t")
    assert down.returncode == 7
    assert down.stderr.startswith("error: cannot reach http://127.0.0.1:9")
    assert len(down.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("server", ["notaurl", "http://[::1", "http://h:99999", "ftp://h"])
def test_a_bad_server_url_is_a_one_line_usage_error(tmp_path: Path, server: str) -> None:
    a = tmp_path / "a.png"
    a.write_bytes(samples.png(seed=204))
    commands: list[list[str | Path]] = [["upload", a]]
    if server == "notaurl":
        commands.append(["sharex-config"])
    for args in commands:
        result = run_cli("images", *args, "--server", server, "--token", "t")
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"error: --server {server!r} is not a server URL")
        assert len(result.stderr.strip().splitlines()) == 1


def test_sharex_config(hosted: Hosted) -> None:
    result = run_cli(
        "images", "sharex-config", "--server", "https://img.example.net", "--token", "hk_x"
    )
    config = json.loads(result.stdout)
    assert config["RequestURL"] == "https://img.example.net/api/images"
    assert config["Body"] == "MultipartFormData"
    assert config["FileFormName"] == "file"
    assert config["Headers"] == {"Authorization": "Bearer hk_x"}
    assert config["URL"] == "{json:url}"
    assert config["DeletionURL"] == "{json:delete_url}"


def test_sharex_config_upload_works_as_sharex_sends_it(hosted: Hosted) -> None:
    """Send what the .sxcu describes and read the link where it says."""
    config = json.loads(
        run_cli(
            "images", "sharex-config", "--server", hosted.server.url, "--token", hosted.token
        ).stdout
    )
    data = samples.png(seed=203)
    response = httpx.request(
        config["RequestMethod"],
        config["RequestURL"],
        headers=config["Headers"],
        files={config["FileFormName"]: ("Screenshot 2026-11-22.png", data, "image/png")},
    )
    body = response.json()
    assert httpx.get(body["url"]).content == data
    assert httpx.get(body["delete_url"]).status_code == 200
