"""Across processes and restarts: CLI deletes, grown id lengths, crashes, disconnects."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.images import samples
from tests.images.conftest import FAST, Hosted
from tests.support import create_token, run_cli, serve


def post_png(url: str, token: str, seed: int) -> httpx.Response:
    return httpx.post(
        f"{url}/api/images",
        content=samples.png(seed=seed, size=(8, 8)),
        headers={"Content-Type": "image/png", "Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_a_cli_delete_takes_effect_at_once_on_the_running_server(hosted: Hosted) -> None:
    body = post_png(hosted.server.url, hosted.token, 300).json()
    image_id = body["id"]
    info_url = f"{hosted.server.url}/api/images/{image_id}"
    served = httpx.get(body["url"])  # now the server has the record and the bytes in memory
    assert served.status_code == 200
    assert httpx.get(info_url).status_code == 200
    assert httpx.get(body["thumbnail_url"]).status_code == 200
    etag = served.headers["etag"]
    assert httpx.get(body["url"], headers={"If-None-Match": etag}).status_code == 304

    gone = run_cli("images", "delete", image_id, data_dir=hosted.data_dir)
    assert gone.returncode == 0, gone.stderr

    assert httpx.get(body["url"], headers={"If-None-Match": etag}).status_code == 404
    assert httpx.get(body["url"]).status_code == 404
    assert httpx.head(body["url"].rsplit(".", 1)[0]).status_code == 404
    assert httpx.get(info_url).status_code == 404
    assert httpx.get(body["thumbnail_url"]).status_code == 404
    assert httpx.get(body["delete_url"]).status_code == 404


def test_grown_id_length_survives_a_restart(tmp_path: Path) -> None:
    """With 2 letters and length 6 there are 64 ids: collisions pile up and ids grow."""
    env = {**FAST, "HOMEKEEP_IMAGES_ID_ALPHABET": "ab", "HOMEKEEP_IMAGES_ID_LENGTH": "6"}
    data_dir = tmp_path / "data"
    token = create_token(data_dir, "uploader", "images")
    lengths = []
    with serve(data_dir, env=env) as server:
        for seed in range(120):
            response = post_png(server.url, token, seed)
            assert response.status_code == 201, response.text
            lengths.append(len(response.json()["id"]))
            if lengths[-1] > 6:
                break
    grown = lengths[-1]
    assert grown == 7, lengths
    with serve(data_dir, env=env) as server:
        after = [post_png(server.url, token, 500 + seed).json()["id"] for seed in range(8)]
    assert all(len(i) >= grown for i in after), after


def _half_upload(url: str, token: str, form: str) -> None:
    """Send the headers and half the body of a 200 KB upload, then hang up."""
    png = samples.png(seed=77, size=(260, 260))
    if form == "raw":
        body, kind = png, "image/png"
    elif form == "json":
        doc = {
            "file_name": "a.png",
            "mime_type": "image/png",
            "data": base64.b64encode(png).decode(),
        }
        body = json.dumps(doc).encode()
        kind = "application/json"
    else:
        body = (
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--B--\r\n"
        )
        kind = "multipart/form-data; boundary=B"
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        time.sleep(0.3)


@pytest.mark.parametrize("form", ["raw", "json", "multipart"])
def test_a_client_that_hangs_up_mid_upload_leaves_nothing(hosted: Hosted, form: str) -> None:
    before = hosted.state()
    _half_upload(hosted.server.url, hosted.token, form)
    time.sleep(0.3)
    assert hosted.state() == before
    assert post_png(hosted.server.url, hosted.token, 301).status_code == 201  # still serving


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_a_server_killed_mid_upload_leaves_nothing_visible_after_restart(
    tmp_path: Path,
) -> None:
    env = {**FAST, "HOMEKEEP_IMAGES_MAX_BYTES": "3000000"}
    data_dir = tmp_path / "data"
    token = create_token(data_dir, "uploader", "images")
    area = data_dir / "images"
    big = samples.noise_png(450)  # about 600 KB: each upload takes a while
    stop = threading.Event()

    def upload_until_killed() -> None:
        for _ in range(200):
            if stop.is_set():
                return
            try:
                httpx.post(
                    f"{url}/api/images",
                    content=big,
                    headers={"Content-Type": "image/png", "Authorization": f"Bearer {token}"},
                    timeout=10,
                )
            except httpx.TransportError:
                return

    with serve(data_dir, env=env) as server:
        url = server.url
        threads = [threading.Thread(target=upload_until_killed) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.8)
        server.stop(signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    # What a kill at the worst moments leaves: a temp file of the dead process, a file
    # linked but never committed, and a thumbnail of it.
    (area / "tmp" / f".upload-{_dead_pid()}-x1y2z3.part").write_bytes(big)
    (area / "files" / "Zz9Zz9Zz.png").write_bytes(big)
    (area / "thumbs").mkdir(exist_ok=True)
    (area / "thumbs" / "Zz9Zz9Zz.webp").write_bytes(b"RIFF")
    with serve(data_dir, env=env) as server:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            files = {p.name for p in (area / "files").iterdir()}
            leftovers = list((area / "tmp").iterdir())
            if "Zz9Zz9Zz.png" not in files and not leftovers:
                break
            time.sleep(0.2)
        listed = run_cli("images", "list", "--json", "--limit", "1000", data_dir=data_dir)
        rows = json.loads(listed.stdout)["images"]
        assert {r["id"] + "." + r["ext"] for r in rows} == files
        assert leftovers == []
        assert not (area / "thumbs" / "Zz9Zz9Zz.webp").exists()
        assert httpx.get(f"{server.url}/i/Zz9Zz9Zz.png").status_code == 404
        for row in rows:
            assert httpx.get(f"{server.url}/i/{row['id']}.{row['ext']}").content == big
