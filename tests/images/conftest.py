"""Fixtures: a real server on loopback with an images token, and ways to look inside it."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import Server, create_token, running

FAST = {"HOMEKEEP_IMAGES_RATE_LIMIT_PER_MINUTE": "0"}


@dataclass
class Hosted:
    """A running server, a token for it, and its images folder and database."""

    server: Server
    token: str
    data_dir: Path

    @property
    def files(self) -> Path:
        return self.data_dir / "images" / "files"

    @property
    def db(self) -> Path:
        return self.data_dir / "images" / "images.sqlite"

    @property
    def temp(self) -> Path:
        return self.data_dir / "images" / "tmp"

    def state(self) -> tuple[list[str], list[tuple[object, ...]]]:
        """Every file in the images and temp folders, and every row."""
        files = sorted(
            f"{folder.name}/{p.name}"
            for folder in (self.files, self.temp)
            if folder.exists()
            for p in folder.iterdir()
        )
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT * FROM images ORDER BY id").fetchall()
        return files, rows

    def row(self, image_id: str) -> sqlite3.Row | None:
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM images WHERE id = ?", (image_id,)
            ).fetchone()
            return row


def start(tmp: Path, env: dict[str, str]) -> Iterator[Hosted]:
    data_dir = tmp / "data"
    token = create_token(data_dir, "uploader", "images")
    with running(["serve", "--port", "0"], data_dir=data_dir, env=env) as server:
        yield Hosted(server, token, data_dir)


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    """A server with a 300 KB, 4 MP (40 MP for all frames) limit and no rate limit, per module."""
    env = {
        **FAST,
        "HOMEKEEP_IMAGES_MAX_BYTES": "300000",
        "HOMEKEEP_IMAGES_MAX_PIXELS": "4000000",
        "HOMEKEEP_IMAGES_MAX_TOTAL_PIXELS": "40000000",
    }
    yield from start(tmp_path_factory.mktemp("images"), env)


def upload_json(h: Hosted, data: bytes, mime: str, name: str = "pic") -> httpx.Response:
    body = {"file_name": name, "mime_type": mime, "data": base64.b64encode(data).decode()}
    with h.server.client(h.token) as client:
        return client.post("/api/images", json=body)


def upload_multipart(h: Hosted, data: bytes, mime: str, name: str = "pic") -> httpx.Response:
    with h.server.client(h.token) as client:
        return client.post("/api/images", files={"file": (name, data, mime)})


def upload_raw(h: Hosted, data: bytes, mime: str, name: str = "pic") -> httpx.Response:
    with h.server.client(h.token) as client:
        return client.post(
            "/api/images", content=data, headers={"Content-Type": mime, "X-File-Name": name}
        )


UPLOADERS = [upload_json, upload_multipart, upload_raw]
