"""Fixtures: a real `homekeep serve` with the convert area, its tokens, and test media."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.convert import media
from tests.support import Server, create_token, run_cli, running

# Fast presets, quick heartbeats and leases: tests see progress and lost workers sooner.
FAST = {
    "HOMEKEEP_CONVERT_X264_PRESET": "ultrafast",
    "HOMEKEEP_CONVERT_X265_PRESET": "ultrafast",
    "HOMEKEEP_CONVERT_HEARTBEAT_SECONDS": "0.3",
    "HOMEKEEP_CONVERT_LEASE_SECONDS": "4",
    "HOMEKEEP_CONVERT_MIN_FREE_BYTES": "0",
    "HOMEKEEP_CONVERT_MAX_INPUT_BYTES": str(64 << 20),
}


@dataclass
class Hosted:
    """A running server with a client token, a worker token, and its data directory."""

    server: Server
    token: str
    worker_token: str
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def area(self) -> Path:
        return self.data_dir / "convert"

    def client(self, token: str | None = None) -> httpx.Client:
        return self.server.client(token or self.token)

    def upload(
        self,
        path: Path,
        conversion: str,
        *,
        name: str | None = None,
        sha512: str | None = "auto",
    ) -> httpx.Response:
        """Create an upload and send the whole file in one PATCH; return the last answer."""
        data = path.read_bytes()
        declared = hashlib.sha512(data).hexdigest() if sha512 == "auto" else sha512
        with self.client() as http:
            created = http.post(
                "/api/convert/uploads",
                json={
                    "file_name": name or path.name,
                    "file_size": len(data),
                    "conversion": conversion,
                    "sha512_checksum": declared,
                },
            )
            if created.status_code != 201:
                return created
            return http.patch(
                f"/api/convert/uploads/{created.json()['upload_id']}",
                content=data,
                headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            )

    def item(self, item_id: str) -> dict[str, Any]:
        with self.client() as http:
            answer = http.get(f"/api/convert/items/{item_id}")
            assert answer.status_code == 200, answer.text
            data: dict[str, Any] = answer.json()
            return data

    def wait(self, item_id: str, *statuses: str, timeout: float = 90) -> dict[str, Any]:
        """Poll an item until it reaches one of ``statuses``."""
        wanted = statuses or ("finished_successful", "finished_with_errors", "cancelled")
        deadline = time.monotonic() + timeout
        item = self.item(item_id)
        while item["status"] not in wanted and time.monotonic() < deadline:
            time.sleep(0.1)
            item = self.item(item_id)
        assert item["status"] in wanted, item
        return item

    def files(self, folder: str) -> list[str]:
        """The files left in one of the area's folders (uploads, inputs, outputs, work)."""
        root = self.area / folder
        return sorted(
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != ".lock"
        )

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.area / "convert.sqlite") as conn:
            return conn.execute(sql).fetchall()


def start(
    tmp: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Hosted]:
    """Start `homekeep serve` (or ``args``) on a fresh data directory."""
    data_dir = tmp / "data"
    token = create_token(data_dir, "client", "convert")
    worker = create_token(data_dir, "worker", "convert-worker")
    command = list(args) or ["serve", "--port", "0"]
    with running(command, data_dir=data_dir, env={**FAST, **(env or {})}) as server:
        yield Hosted(server, token, worker, data_dir)


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    """One server with one worker thread, shared by a module's tests."""
    yield from start(tmp_path_factory.mktemp("convert"))


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of test input, made once per run."""
    folder = tmp_path_factory.mktemp("media")
    made = {
        "mp4": media.video(folder / "clip.mp4", subtitles=True),
        "faststart": media.video(folder / "fast.mp4", seconds=2, faststart=True),
        "flac": media.flac(folder / "tone.flac"),
        "png": media.picture(folder / "still.png"),
        "jpeg": media.picture(folder / "photo.jpg"),
        "gif": media.gif(folder / "anim.gif"),
        "bomb": media.png_bomb(folder / "bomb.png"),
        "huge_bomb": media.png_bomb(folder / "huge.png", side=100_000),
    }
    made["truncated"] = media.truncated(made["mp4"], folder / "cut.mp4")
    made["cut_faststart"] = media.truncated(made["faststart"], folder / "cut-fast.mp4", 0.6)
    made["text"] = folder / "notes.mp4"
    made["text"].write_text("not a video, only words\n" * 20, "utf-8")
    made["empty"] = folder / "empty.mp4"
    made["empty"].write_bytes(b"")
    return made


def error_of(response: httpx.Response) -> tuple[int, str]:
    """The status and code of one of our JSON errors (and the shape checked)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return response.status_code, str(body["error"]["code"])


def dump(data: Any) -> str:
    return json.dumps(data, indent=1)[:2000]


def cli_json(client: Path, *args: str | Path, env: dict[str, str] | None = None) -> Any:
    """A `homekeep convert` command of the client in ``client``, its --json answer parsed."""
    done = run_cli("convert", *args, "--json", data_dir=client, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
