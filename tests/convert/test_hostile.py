"""Broken media and hostile values: a 4xx in the one error shape or finished_with_errors,
and never a half-written file."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.convert.conftest import Hosted, error_of, start


@pytest.mark.parametrize(
    ("clip", "conversion", "status", "code"),
    [
        ("text", "mkv-x264", 415, "unsupported_media_type"),  # a text file named .mp4
        ("truncated", "mkv-x264", 415, "unsupported_media_type"),  # its index was cut off
        ("bomb", "webp", 413, "payload_too_large"),  # 15,000 x 15,000 pixels
        ("huge_bomb", "webp", 422, "invalid_input"),  # past what ffmpeg itself will size
        ("empty", "mkv-x264", 422, "invalid_input"),
        ("png", "mkv-x264", 415, "unsupported_media_type"),  # a picture is not a video
        ("flac", "webp", 415, "unsupported_media_type"),
    ],
)
def test_bad_inputs_are_refused_up_front(
    hosted: Hosted, clips: dict[str, Path], clip: str, conversion: str, status: int, code: str
) -> None:
    before = hosted.rows("SELECT COUNT(*) FROM items")[0][0]
    answer = hosted.upload(clips[clip], conversion)
    assert error_of(answer) == (status, code), answer.text
    assert hosted.files("uploads") == []
    assert hosted.rows("SELECT COUNT(*) FROM items")[0][0] == before


def test_truncated_video_that_probes_fails_with_the_reason(
    hosted: Hosted, clips: dict[str, Path]
) -> None:
    answer = hosted.upload(clips["cut_faststart"], "mkv-x264")
    assert answer.status_code == 201, answer.text
    item = hosted.wait(answer.json()["item_id"])
    assert item["status"] == "finished_with_errors"
    assert any("frames" in e or "lasts" in e or "ffmpeg" in e for e in item["errors"]), item
    assert not any(item["item_id"] in f for f in hosted.files("outputs"))
    assert hosted.files("work") == []


def _create(http: httpx.Client, **changes: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "file_name": "a.mp4",
        "file_size": 1000,
        "conversion": "mkv-x264",
        "sha512_checksum": "a" * 128,
    }
    body.update(changes)
    return http.post("/api/convert/uploads", json={k: v for k, v in body.items() if v != ...})


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"file_name": "../../etc/passwd"}, 422, "invalid_input"),
        ({"file_name": "dir/clip.mp4"}, 422, "invalid_input"),
        ({"file_name": "C:\\clip.mp4"}, 422, "invalid_input"),
        ({"file_name": ".."}, 422, "invalid_input"),
        ({"file_name": "a\nb.mp4"}, 422, "invalid_input"),
        ({"file_name": "evil\u202egnp.mp4"}, 422, "invalid_input"),
        ({"file_name": "é" * 200}, 422, "invalid_input"),  # 400 bytes
        ({"file_name": 7}, 422, "invalid_input"),
        ({"file_size": 0}, 422, "invalid_input"),
        ({"file_size": -1}, 422, "invalid_input"),
        ({"file_size": 1 << 40}, 413, "payload_too_large"),
        ({"file_size": "10"}, 422, "invalid_input"),
        ({"conversion": "exe"}, 400, "unknown_conversion"),
        ({"conversion": "x" * 65}, 422, "invalid_input"),
        ({"sha512_checksum": "abc"}, 422, "invalid_input"),
        ({"sha512_checksum": "g" * 128}, 422, "invalid_input"),
        ({"client_id": "a b"}, 422, "invalid_input"),
        ({"client_id": ""}, 422, "invalid_input"),
        ({"extra": 1}, 422, "invalid_input"),
        ({"file_name": ...}, 422, "invalid_input"),
    ],
)
def test_hostile_upload_requests(
    hosted: Hosted, changes: dict[str, Any], status: int, code: str
) -> None:
    with hosted.client() as http:
        assert error_of(_create(http, **changes)) == (status, code)
    assert hosted.files("uploads") == []


@pytest.fixture
def upload(hosted: Hosted) -> Iterator[tuple[httpx.Client, str]]:
    with hosted.client() as http:
        created = _create(http, file_size=10)
        assert created.status_code == 201, created.text
        yield http, f"/api/convert/uploads/{created.json()['upload_id']}"
        http.delete(f"/api/convert/uploads/{created.json()['upload_id']}")


@pytest.mark.parametrize(
    ("offset", "body", "status", "code"),
    [
        ("5", b"12345", 409, "offset_mismatch"),
        ("-1", b"1", 400, "bad_request"),
        ("1e3", b"1", 400, "bad_request"),
        ("0", b"12345678901", 413, "payload_too_large"),
        (None, b"1", 422, "invalid_input"),
    ],
)
def test_hostile_patches(
    hosted: Hosted,
    upload: tuple[httpx.Client, str],
    offset: str | None,
    body: bytes,
    status: int,
    code: str,
) -> None:
    http, path = upload
    headers = {"Upload-Offset": offset} if offset is not None else {}
    assert error_of(http.patch(path, content=body, headers=headers)) == (status, code)
    assert http.head(path).headers["upload-offset"] == "0"  # nothing of it was kept


def test_chunked_body_past_the_size_keeps_nothing(
    hosted: Hosted, upload: tuple[httpx.Client, str]
) -> None:
    http, path = upload
    answer = http.patch(
        path, content=iter([b"12345", b"678901234"]), headers={"Upload-Offset": "0"}
    )
    assert error_of(answer) == (413, "payload_too_large")
    assert http.head(path).headers["upload-offset"] == "0"


@pytest.mark.parametrize(
    "path",
    [
        "/api/convert/items/not-a-uuid",
        "/api/convert/items/..%2f..%2fconvert.sqlite",
        "/api/convert/uploads/" + "f" * 200,
        # a fixed id: every xdist worker must collect the same test names
        "/api/convert/items/6f1c2b0e-8a4d-4c3e-9b1a-2d5e7f9a0c3bx",
    ],
)
def test_hostile_ids(hosted: Hosted, path: str) -> None:
    with hosted.client() as http:
        status, _ = error_of(http.get(path))
        assert status in (404, 422)


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"limit": "0"},
        {"limit": "1001"},
        {"offset": "-1"},
        {"client_id": "x" * 65},
    ],
)
def test_hostile_listing(hosted: Hosted, params: dict[str, str]) -> None:
    with hosted.client() as http:
        assert error_of(http.get("/api/convert/items", params=params)) == (422, "invalid_input")


def test_unknown_item_and_output_before_finish(hosted: Hosted) -> None:
    with hosted.client() as http:
        missing = http.get(f"/api/convert/items/{uuid.uuid4()}/output")
        assert error_of(missing) == (404, "not_found")


def test_worker_routes_refuse_hostile_values(hosted: Hosted) -> None:
    job = f"/api/convert/jobs/{uuid.uuid4()}"
    with hosted.client(hosted.worker_token) as http:
        for body in ({"worker_id": "../x"}, {"worker_id": "a/1/0", "pid": -1}, {}):
            assert error_of(http.post(f"{job}/claim", json=body)) == (422, "invalid_input")
        beat = http.post(
            f"{job}/heartbeat",
            json={"worker_id": "a/1/0", "progress": {"percent": 500}},
            headers={"X-Lease-Token": "0" * 32},
        )
        assert error_of(beat) == (422, "invalid_input")
        lost = http.post(f"{job}/heartbeat", json={"worker_id": "a/1/0"})
        assert error_of(lost) == (409, "lease_lost")
        fail = http.post(f"{job}/fail", json={"errors": []}, headers={"X-Lease-Token": "0" * 32})
        assert error_of(fail) == (422, "invalid_input")
        stolen = http.get(f"{job}/input", headers={"X-Lease-Token": "0" * 32})
        assert error_of(stolen) == (409, "lease_lost")
        put = http.put(
            f"{job}/output",
            content=b"x",
            headers={"X-Lease-Token": "0" * 32, "X-Sha512": hashlib.sha512(b"x").hexdigest()},
        )
        assert error_of(put) == (409, "lease_lost")


def test_not_enough_disk_is_refused(tmp_path: Path) -> None:
    for hosted in start(tmp_path, {"HOMEKEEP_CONVERT_MIN_FREE_BYTES": str(1 << 60)}):
        with hosted.client() as http:
            answer = _create(http)
            assert error_of(answer) == (507, "insufficient_storage")
            assert "free" in answer.json()["error"]["message"]
        assert hosted.files("uploads") == []
