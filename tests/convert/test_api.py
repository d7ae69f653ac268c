"""The server API over real HTTP: items with the seed's fields, resumable uploads, Range."""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.convert.conftest import Hosted, error_of, start

SEED_FIELDS = {
    "item_id",
    "created_at",
    "client_id",
    "file_name",
    "sha512_checksum",
    "file_size",
    "status",
    "version",
}


def test_item_round_trip(hosted: Hosted, clips: dict[str, Path]) -> None:
    answer = hosted.upload(clips["mp4"], "mkv-x264")
    assert answer.status_code == 201, answer.text
    item = answer.json()
    assert set(item) >= SEED_FIELDS
    assert uuid.UUID(item["item_id"]).version == 4
    assert item["client_id"] == "client"  # the token's name, when the client gives none
    assert item["file_size"] == clips["mp4"].stat().st_size
    assert item["sha512_checksum"] == hashlib.sha512(clips["mp4"].read_bytes()).hexdigest()
    assert item["status"] in ("to_do", "in_progress")
    done = hosted.wait(item["item_id"])
    assert done["status"] == "finished_successful", done
    assert done["version"] > item["version"]
    assert done["attempts"] == 1
    with hosted.client() as http:
        whole = http.get(f"/api/convert/items/{item['item_id']}/output")
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "video/x-matroska"
        assert 'filename="clip.mkv"' in whole.headers["content-disposition"]
        assert hashlib.sha512(whole.content).hexdigest() == done["output_sha512_checksum"]
        tail = http.get(
            f"/api/convert/items/{item['item_id']}/output", headers={"Range": "bytes=100-"}
        )
        assert tail.status_code == 206
        assert tail.content == whole.content[100:]
        mine = http.get("/api/convert/items", params={"client_id": "client"}).json()["items"]
        assert item["item_id"] in [i["item_id"] for i in mine]
        other = http.get("/api/convert/items", params={"client_id": "nobody"}).json()
        assert other == {"items": []}
        assert http.get("/api/convert/server").json()["load"] >= 0


def test_upload_resumes_after_cuts_at_random_points(hosted: Hosted, clips: dict[str, Path]) -> None:
    data = clips["mp4"].read_bytes()
    rng = random.Random(15)
    with hosted.client() as http:
        created = http.post(
            "/api/convert/uploads",
            json={
                "file_name": "resumed.mp4",
                "file_size": len(data),
                "conversion": "mkv-x264",
                "sha512_checksum": hashlib.sha512(data).hexdigest(),
                "client_id": "laptop",
            },
        ).json()
        path = f"/api/convert/uploads/{created['upload_id']}"
        offset = 0
        for _ in range(4):  # each request claims the whole rest, then the connection dies
            cut = rng.randint(offset + 1, len(data) - 1)
            _send_and_drop(hosted.url, hosted.token, path, offset, data[offset:], cut - offset)
            head = http.head(path)
            assert head.status_code == 200
            offset = int(head.headers["upload-offset"])
            assert offset == cut  # every byte that arrived was kept
        stale = http.patch(path, content=b"x", headers={"Upload-Offset": "0"})
        assert error_of(stale) == (409, "offset_mismatch")
        done = http.patch(path, content=data[offset:], headers={"Upload-Offset": str(offset)})
        assert done.status_code == 201, done.text
        assert done.json()["client_id"] == "laptop"
        state = http.get(path).json()
        assert state["state"] == "done"
        assert state["item_id"] == done.json()["item_id"]
    assert hosted.wait(done.json()["item_id"])["status"] == "finished_successful"
    assert hosted.files("uploads") == []


def test_a_silent_upload_is_cut_and_resumes(tmp_path: Path, clips: dict[str, Path]) -> None:
    """A client gone without a word (the connection open, nothing sent) is cut after
    ``upload_idle_seconds``: what arrived is kept and the upload resumes from there."""
    data = clips["mp4"].read_bytes()
    for hosted in start(tmp_path, {"HOMEKEEP_CONVERT_UPLOAD_IDLE_SECONDS": "2"}):
        with hosted.client() as http:
            created = http.post(
                "/api/convert/uploads",
                json={
                    "file_name": "silent.mp4",
                    "file_size": len(data),
                    "conversion": "mkv-x264",
                    "sha512_checksum": hashlib.sha512(data).hexdigest(),
                },
            ).json()
            path = f"/api/convert/uploads/{created['upload_id']}"
            where = urlsplit(hosted.url)
            assert where.hostname is not None
            assert where.port is not None
            with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
                sock.sendall(
                    (
                        f"PATCH {path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
                        f"Authorization: Bearer {hosted.token}\r\nUpload-Offset: 0\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n"
                    ).encode()
                    + data[:5000]
                )
                answer = sock.recv(4096).decode("latin-1")  # the server speaks first
            assert answer.startswith("HTTP/1.1 204"), answer
            assert "upload-offset: 5000" in answer.lower()
            assert http.head(path).headers["upload-offset"] == "5000"
            rest = http.patch(path, content=data[5000:], headers={"Upload-Offset": "5000"})
            assert rest.status_code == 201, rest.text
            assert rest.json()["sha512_checksum"] == hashlib.sha512(data).hexdigest()


def _send_and_drop(url: str, token: str, path: str, offset: int, rest: bytes, send: int) -> None:
    """A PATCH that announces ``rest`` but dies after ``send`` bytes of it (a lost network).

    The connection is reset (not closed cleanly) once the server has read what was sent,
    as when a laptop's network goes away mid-upload.
    """
    where = urlsplit(url)
    assert where.hostname is not None
    assert where.port is not None
    sock = socket.create_connection((where.hostname, where.port), timeout=10)
    try:
        head = (
            f"PATCH {path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nUpload-Offset: {offset}\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(rest)}\r\n\r\n"
        )
        sock.sendall(head.encode() + rest[:send])
        time.sleep(0.5)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def test_checksum_mismatch_is_refused_and_leaves_nothing(
    hosted: Hosted, clips: dict[str, Path]
) -> None:
    answer = hosted.upload(clips["png"], "webp", sha512="0" * 128)
    assert error_of(answer) == (409, "checksum_mismatch")
    assert hosted.files("uploads") == []
    assert not any(r[0] == "still.png" for r in hosted.rows("SELECT file_name FROM items"))


def test_cancel_retry_delete(hosted: Hosted, clips: dict[str, Path]) -> None:
    with hosted.client() as http:
        item = hosted.upload(clips["png"], "webp").json()
        path = f"/api/convert/items/{item['item_id']}"
        hosted.wait(item["item_id"])
        again = http.post(f"{path}/cancel")
        assert error_of(again) == (409, "conflict")  # finished: nothing to cancel
        assert http.post(f"{path}/retry").status_code == 409  # only failed or cancelled
        assert http.delete(path).json() == {"deleted": item["item_id"]}
        assert error_of(http.get(path)) == (404, "not_found")
        assert not any(item["item_id"] in f for f in hosted.files("outputs"))
        assert not any(item["item_id"] in f for f in hosted.files("inputs"))


def test_tokens_and_scopes(hosted: Hosted) -> None:
    anonymous = httpx.get(f"{hosted.url}/api/convert/items")
    assert error_of(anonymous) == (401, "unauthorized")
    with hosted.client(hosted.worker_token) as http:
        assert error_of(http.get("/api/convert/items")) == (403, "forbidden")
    with hosted.client() as http:
        claim = http.post(f"/api/convert/jobs/{uuid.uuid4()}/claim", json={"worker_id": "a/1/0"})
        assert error_of(claim) == (403, "forbidden")
    with hosted.client(hosted.worker_token) as http:
        nothing = http.post(f"/api/convert/jobs/{uuid.uuid4()}/claim", json={"worker_id": "a/1/0"})
        assert error_of(nothing) == (409, "not_waiting")
