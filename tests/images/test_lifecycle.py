"""Across processes and restarts: CLI deletes, grown id lengths, crashes, disconnects."""

from __future__ import annotations

from pathlib import Path

import httpx

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


def test_raising_id_length_in_config_wins_over_a_shorter_grown_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token = create_token(data_dir, "uploader", "images")
    with serve(data_dir, env={**FAST, "HOMEKEEP_IMAGES_ID_LENGTH": "12"}) as server:
        assert len(post_png(server.url, token, 1).json()["id"]) == 12
