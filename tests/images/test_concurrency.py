"""A thousand uploads at once (raw, JSON, multipart) on a real server: unique ids, all served."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import httpx

from tests.images import samples
from tests.images.conftest import Hosted

UPLOADS = 1000
AT_ONCE = 64


async def _upload_all(h: Hosted) -> list[tuple[bytes, dict[str, object]]]:
    gate = asyncio.Semaphore(AT_ONCE)
    limits = httpx.Limits(max_connections=AT_ONCE)
    headers = {"Authorization": f"Bearer {h.token}"}
    async with httpx.AsyncClient(
        base_url=h.server.url, headers=headers, limits=limits, timeout=60
    ) as client:

        async def one(i: int) -> tuple[bytes, dict[str, object]]:
            data = samples.png(seed=i, size=(24, 16 + i % 7))
            async with gate:
                if i % 3 == 0:
                    response = await client.post(
                        "/api/images", content=data, headers={"Content-Type": "image/png"}
                    )
                elif i % 3 == 1:
                    doc = {"mime_type": "image/png", "data": base64.b64encode(data).decode()}
                    response = await client.post("/api/images", json=doc)
                else:
                    response = await client.post(
                        "/api/images", files={"file": (f"n{i}.png", data, "image/png")}
                    )
            assert response.status_code == 201, response.text
            body: dict[str, object] = response.json()
            return data, body

        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(UPLOADS))), 150)


async def _fetch_all(urls: list[str]) -> list[bytes]:
    gate = asyncio.Semaphore(AT_ONCE)
    async with httpx.AsyncClient(
        timeout=60, limits=httpx.Limits(max_connections=AT_ONCE)
    ) as client:

        async def one(url: str) -> bytes:
            async with gate:
                response = await client.get(url)
            assert response.status_code == 200
            return response.content

        return await asyncio.wait_for(asyncio.gather(*(one(u) for u in urls)), 150)


def test_a_thousand_concurrent_uploads(hosted: Hosted) -> None:
    results = asyncio.run(_upload_all(hosted))
    ids = [str(body["id"]) for _, body in results]
    assert len(set(ids)) == UPLOADS
    served = asyncio.run(_fetch_all([str(body["url"]) for _, body in results]))
    for (data, body), content in zip(results, served, strict=True):
        assert content == data
        assert body["sha256"] == hashlib.sha256(content).hexdigest()
    files, rows = hosted.state()
    assert {r[0] for r in rows} >= set(ids)
    assert not [f for f in files if not f.startswith("files/")]  # no temp file left behind
