"""Across processes and restarts: CLI deletes, grown id lengths, crashes, disconnects."""

from __future__ import annotations

import httpx

from tests.images import samples
from tests.images.conftest import Hosted
from tests.support import run_cli


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
