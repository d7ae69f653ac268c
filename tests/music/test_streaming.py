"""Streams through a real `homekeep serve`: the file as it is with Range, transcodes, and no
ffmpeg left behind when the listener goes."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.music import media, player
from tests.music.player import Player
from tests.support import run_cli


@pytest.fixture(scope="module")
def srv(
    tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path], covers: dict[str, bytes]
) -> Iterator[Player]:
    with player.running(tmp_path_factory.mktemp("stream"), clips, covers) as running:
        yield running


def _track(srv: Player, title: str) -> dict[str, object]:
    with srv.client() as c:
        items = c.get("/api/music/tracks", params={"q": title}).json()["items"]
    found: dict[str, object] = next(t for t in items if t["title"] == title)
    return found


def _ffmpegs(srv: Player) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(srv.server.process.pid).children(recursive=True):
        try:
            if child.name() == "ffmpeg":
                found.append(child)
        except (psutil.NoSuchProcess, FileNotFoundError):
            continue  # a child that ended while the list was read: not running
    return found


def test_the_file_as_it_is_with_ranges(srv: Player) -> None:
    track = _track(srv, "Song 1")
    data = Path(str(track["path"])).read_bytes()
    url = f"/api/music/tracks/{track['id']}/stream"
    with srv.client() as c:
        whole = c.get(url)
        assert whole.status_code == 200
        assert whole.content == data
        assert whole.headers["content-type"] == "audio/flac"
        assert whole.headers["accept-ranges"] == "bytes"
        part = c.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        tail = c.get(url, headers={"Range": "bytes=-50"})
        assert tail.content == data[-50:]
        past = c.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{len(data)}"
        for bad in ("bytes=abc", "lines=1-2", "bytes=5-1", "bytes=" + ",".join(["1-2"] * 40),
                    "bytes=-0", "bytes=-", "bytes=" + "9" * 30 + "-"):  # fmt: skip
            answer = c.get(url, headers={"Range": bad})
            assert answer.status_code == 416, bad
            assert answer.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize(("fmt", "magic", "kind"), [("opus", b"OggS", "audio/ogg"),
                                                    ("mp3", b"", "audio/mpeg")])  # fmt: skip
def test_wavpack_is_transcoded(srv: Player, fmt: str, magic: bytes, kind: str) -> None:
    track = _track(srv, "Blue")
    with srv.client() as c:
        answer = c.get(f"/api/music/tracks/{track['id']}/stream", params={"format": fmt})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == kind
    assert answer.content.startswith(magic)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", "-"],
        input=answer.content, capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert probe.stdout.decode().strip() == ("opus" if fmt == "opus" else "mp3")


def test_time_offset_shortens_the_transcode(srv: Player, tmp_path: Path) -> None:
    track = _track(srv, "Long")
    with srv.client() as c:
        url = f"/api/music/tracks/{track['id']}/stream"
        late = c.get(url, params={"format": "opus", "offset": 230})
    assert late.status_code == 200
    (tmp_path / "late.ogg").write_bytes(late.content)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(tmp_path / "late.ogg")],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert 8 < float(probe.stdout.decode().strip()) < 12


def test_never_lossy_to_lossless(srv: Player) -> None:
    track = _track(srv, "Hit 1")
    with srv.client() as c:
        answer = c.get(f"/api/music/tracks/{track['id']}/stream", params={"format": "flac"})
        assert answer.status_code == 422
        assert "never transcoded to lossless" in answer.json()["error"]["message"]
        for params in ({"format": "wav2"}, {"bitrate": "-1"}, {"offset": "nan"},
                       {"offset": "1e9"}, {"bitrate": "9" * 30}):  # fmt: skip
            bad = c.get(f"/api/music/tracks/{track['id']}/stream", params=params)
            assert bad.status_code == 422, params
        assert c.get("/api/music/tracks/99999999/stream").status_code == 404


def test_a_file_ffmpeg_cannot_decode_is_a_502(
    srv: Player, clips: dict[str, Path], tmp_path: Path
) -> None:
    # a WavPack cut after its first block header, then tagged: mutagen reads it, ffmpeg not
    cut = tmp_path / "cut.wv"
    cut.write_bytes(clips["wavpack"].read_bytes()[:32])
    media.write_track(cut, "wavpack", srv.root / "Broken" / "x.wv", {"title": "Broken"})
    assert run_cli("music", "scan", data_dir=srv.data).returncode == 0
    track = _track(srv, "Broken")
    with srv.client() as c:
        answer = c.get(f"/api/music/tracks/{track['id']}/stream", params={"format": "opus"})
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "tool_failed"
    assert "ffmpeg could not transcode" in answer.json()["error"]["message"]


def test_ffmpeg_ends_when_the_listener_goes(srv: Player) -> None:
    track = _track(srv, "Long")
    host, port = "127.0.0.1", srv.port
    request = (
        f"GET /api/music/tracks/{track['id']}/stream?format=mp3 HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAuthorization: Bearer {srv.token}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request)
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        assert len(_ffmpegs(srv)) == 1  # still running: the client reads slowly
    deadline = time.monotonic() + 15
    while _ffmpegs(srv) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ffmpegs(srv) == []
    assert srv.server.process.poll() is None
