"""A `homekeep serve` with every area mounted and real data in each, for the API fuzz."""

from __future__ import annotations

import hashlib
import io
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from PIL import Image

from tests.convert import media as convert_media
from tests.music import media as music_media
from tests.support import Server, run_cli, running

# quick presets and no free-space floor: the items the fuzz queues convert in a moment
ENV = {
    "HOMEKEEP_CONVERT_X264_PRESET": "ultrafast",
    "HOMEKEEP_CONVERT_X265_PRESET": "ultrafast",
    "HOMEKEEP_CONVERT_MIN_FREE_BYTES": "0",
}


@dataclass
class Home:
    """The running server, its data directory and a token of scope ``all``."""

    server: Server
    data: Path
    token: str
    log: deque[str]  # the server's last lines on stderr: the traceback behind a 500
    ids: dict[str, list[str | int]]  # path parameter -> ids that exist, for the fuzz

    @property
    def url(self) -> str:
        return self.server.url


def _cli(data: Path, config: Path, *args: str | Path, stdin: str | None = None) -> str:
    result = run_cli("--config", config, *args, data_dir=data, input=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _music(base: Path) -> Path:
    """Three real tracks (ffmpeg clips, tagged) in an album and a compilation."""
    clips = music_media.make_clips(base / "clips")
    root = base / "music"
    cover = ((3, music_media.image_bytes(400, 400)),)
    for n in (1, 2):
        music_media.write_track(
            clips["flac"], "flac", root / "Band" / "Album" / f"0{n}.flac",
            {"title": f"Song {n}", "artist": "Band", "album": "Album", "track": n,
             "date": "2010", "genre": "Rock"},
            cover,
        )  # fmt: skip
    music_media.write_track(
        clips["mp3"], "mp3", root / "Comp" / "01.mp3",
        {"title": "Hit", "artist": "Ann", "album": "Hits", "compilation": True, "track": 1},
    )  # fmt: skip
    return root


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buf, "PNG")
    return buf.getvalue()


def _drain(server: Server) -> deque[str]:
    """Read the server's output as it comes, so a full pipe never blocks it; keep the end."""
    kept: deque[str] = deque(maxlen=200)
    for stream in (server.process.stdout, server.process.stderr):
        assert stream is not None
        # one thread per pipe, each the only reader of its pipe; deque appends are atomic
        threading.Thread(target=lambda s=stream: kept.extend(s), daemon=True).start()
    return kept


@contextmanager
def home(base: Path) -> Iterator[Home]:
    """Build the data of every area with the real CLI and API, then yield the server."""
    data, config = base / "data", base / "config.toml"
    source = base / "documents"
    (source / "notes").mkdir(parents=True)
    (source / "notes" / "todo.txt").write_text("water the plants\n", encoding="utf-8")
    (source / "report.bin").write_bytes(bytes(range(256)) * 64)
    config.write_text(
        tomli_w.dumps(
            {
                "sync": {"root": str(base / "sync-root")},
                "backup": {
                    "root": str(base / "backups"),
                    "allowed_roots": [str(base)],
                    "jobs": [{"name": "documents", "source": str(source), "method": "snapshot"}],
                },
                "convert": {"number_of_conversion_threads": 1},
            }
        ),
        encoding="utf-8",
    )
    _cli(data, config, "music", "scan", _music(base))
    _cli(data, config, "backup", "run", "documents")
    token = _cli(data, config, "token", "create", "fuzz", "--scope", "all", "--client", "*")
    with running(["--config", config, "serve", "--port", "0"], data_dir=data, env=ENV) as srv:
        log = _drain(srv)
        with srv.client(token) as http:
            sent = http.post("/api/images", content=_png(), headers={"Content-Type": "image/png"})
            assert sent.status_code == 201, sent.text
            picture = convert_media.picture(base / "still.png")
            body = picture.read_bytes()
            created = http.post(
                "/api/convert/uploads",
                json={
                    "file_name": picture.name,
                    "file_size": len(body),
                    "conversion": "webp",
                    "sha512_checksum": hashlib.sha512(body).hexdigest(),
                },
            )
            assert created.status_code == 201, created.text
            done = http.patch(
                created.json()["upload_url"],
                content=body,
                headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            )
            assert done.status_code == 201, done.text
        pushed = run_cli(
            "sync", "push", source, "--server", srv.url, "--token", token, "--name", "laptop",
            data_dir=base / "laptop",
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        yield Home(srv, data, token, log, _ids(srv, token, sent.json(), done.json()))


def _ids(
    srv: Server, token: str, image: dict[str, Any], item: dict[str, Any]
) -> dict[str, list[str | int]]:
    """The ids of what the areas hold, by the name of the path parameter that takes them."""
    with srv.client(token) as http:
        albums = http.get("/api/music/albums").json()["items"]
        artists = http.get("/api/music/artists").json()["items"]
        tracks = http.get("/api/music/tracks").json()["items"]
        pictures = [
            picture
            for track in tracks
            for picture in http.get(f"/api/music/tracks/{track['id']}").json()["pictures"]
        ]
    return {
        "image_id": [image["id"]],
        "name": ["documents", image["url"].rsplit("/", 1)[-1]],  # a backup job, an image file
        "item_id": [item["item_id"]],
        "upload_id": [item["item_id"]],  # an item keeps the id of the upload it came from
        "client": ["laptop"],
        "album_id": [a["id"] for a in albums],
        "artist_id": [a["id"] for a in artists],
        "track_id": [t["id"] for t in tracks],
        "digest": sorted({p["hash"] for p in pictures}),
    }
