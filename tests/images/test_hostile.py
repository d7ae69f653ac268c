"""Hostile uploads: each gets the right 4xx, and leaves no file and no row behind."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.images import samples
from tests.images.conftest import Hosted

PNG = samples.png(seed=50)
JPEG = samples.encode("JPEG", seed=50)
GIF = samples.encode("GIF", seed=50)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def as_json(doc: object) -> tuple[bytes, str]:
    return json.dumps(doc).encode(), "application/json"


def raw(data: bytes, mime: str) -> tuple[bytes, str]:
    return data, mime


# (case id, request body and content type, status, error code)
CASES: list[tuple[str, tuple[bytes, str], int, str]] = [
    ("png-carrying-jpeg", raw(JPEG, "image/png"), 415, "unsupported_media_type"),
    ("png-carrying-html", raw(samples.HTML, "image/png"), 415, "unsupported_media_type"),
    ("png-carrying-svg", raw(samples.SVG, "image/png"), 415, "unsupported_media_type"),
    ("svg-declared", raw(samples.SVG, "image/svg+xml"), 415, "unsupported_media_type"),
    ("html-declared", raw(samples.HTML, "text/html"), 415, "unsupported_media_type"),
    (
        "html-undeclared",
        raw(samples.HTML, "application/octet-stream"),
        415,
        "unsupported_media_type",
    ),
    ("bmp", raw(samples.encode("BMP"), "image/bmp"), 415, "unsupported_media_type"),
    ("tiff-as-png", raw(samples.encode("TIFF"), "image/png"), 415, "unsupported_media_type"),
    ("png-then-html", raw(PNG + samples.HTML, "image/png"), 422, "invalid_input"),
    ("gifar", raw(GIF + samples.ZIP_TAIL, "image/gif"), 422, "invalid_input"),
    ("jpeg-then-html", raw(JPEG + samples.HTML, "image/jpeg"), 422, "invalid_input"),
    ("png-magic-then-html", raw(PNG[:8] + samples.HTML, "image/png"), 422, "invalid_input"),
    ("truncated-png", raw(PNG[: len(PNG) // 2], "image/png"), 422, "invalid_input"),
    ("truncated-jpeg", raw(JPEG[: len(JPEG) - 40], "image/jpeg"), 422, "invalid_input"),
    ("truncated-gif", raw(GIF[:-3], "image/gif"), 422, "invalid_input"),
    ("corrupt-png", raw(samples.corrupt_png(), "image/png"), 422, "invalid_input"),
    ("webp-bad-size", raw(samples.encode("WEBP")[:-10], "image/webp"), 422, "invalid_input"),
    (
        "png-bomb-huge",
        raw(samples.png_claiming(100_000, 100_000), "image/png"),
        422,
        "too_many_pixels",
    ),
    (
        "png-over-max-pixels",
        raw(samples.png_claiming(3000, 3000), "image/png"),
        422,
        "too_many_pixels",
    ),
    (
        "gif-bomb-in-frame-2",
        raw(samples.gif_with_big_later_frame(65535, 65535), "image/gif"),
        422,
        "too_many_pixels",
    ),
    (
        "gif-frame-2-over-max-pixels",
        raw(samples.gif_with_big_later_frame(3000, 3000), "image/gif"),
        422,
        "too_many_pixels",
    ),
    (
        "gif-of-many-canvas-frames",  # 30 frames of 2000x2000 = 120 MP, over the 40 MP total
        raw(samples.gif_of_tiny_updates(2000, 30), "image/gif"),
        422,
        "too_many_pixels",
    ),
    ("empty-raw", raw(b"", "image/png"), 422, "invalid_input"),
    ("oversized-raw", raw(PNG + b"\x00" * 400_000, "image/png"), 413, "payload_too_large"),
    (
        "oversized-json",
        as_json({"mime_type": "image/png", "data": b64(b"\x00" * 450_000)}),
        413,
        "payload_too_large",
    ),
    ("empty-data", as_json({"mime_type": "image/png", "data": ""}), 422, "invalid_input"),
    (
        "invalid-base64",
        as_json({"mime_type": "image/png", "data": "iVBOR*w0K"}),
        422,
        "invalid_input",
    ),
    (
        "bad-padding",
        as_json({"mime_type": "image/png", "data": b64(PNG)[:-1]}),
        422,
        "invalid_input",
    ),
    (
        "base64-newlines",
        as_json({"mime_type": "image/png", "data": b64(PNG)[:40] + "\n" + b64(PNG)[40:]}),
        422,
        "invalid_input",
    ),
    (
        "non-canonical-base64",
        as_json({"mime_type": "image/png", "data": "QR=="}),
        422,
        "invalid_input",
    ),
    (
        "urlsafe-base64",
        as_json({"mime_type": "image/png", "data": b64(JPEG).replace("/", "_").replace("+", "-")}),
        422,
        "invalid_input",
    ),
    (
        "nul-in-name",
        as_json({"file_name": "a\x00.png", "mime_type": "image/png", "data": b64(PNG)}),
        422,
        "invalid_input",
    ),
    (
        "newline-in-name",
        as_json({"file_name": "a\r\nb.png", "mime_type": "image/png", "data": b64(PNG)}),
        422,
        "invalid_input",
    ),
    (
        "c1-escape-in-name",
        as_json({"file_name": "a\x9b31m.png", "mime_type": "image/png", "data": b64(PNG)}),
        422,
        "invalid_input",
    ),
    (
        "bidi-override-in-name",
        as_json({"file_name": "cat\u202egnp.exe", "mime_type": "image/png", "data": b64(PNG)}),
        422,
        "invalid_input",
    ),
    (
        "unknown-field",
        as_json({"mime_type": "image/png", "data": b64(PNG), "path": "/etc"}),
        422,
        "invalid_input",
    ),
    ("data-as-number", as_json({"mime_type": "image/png", "data": 12345}), 422, "invalid_input"),
    ("mime-as-list", as_json({"mime_type": ["image/png"], "data": b64(PNG)}), 422, "invalid_input"),
    (
        "name-as-object",
        as_json({"file_name": {"a": 1}, "mime_type": "image/png", "data": b64(PNG)}),
        422,
        "invalid_input",
    ),
    (
        "expiry-as-string",
        as_json({"mime_type": "image/png", "data": b64(PNG), "expires_in": "60"}),
        422,
        "invalid_input",
    ),
    (
        "negative-expiry",
        as_json({"mime_type": "image/png", "data": b64(PNG), "expires_in": -5}),
        422,
        "invalid_input",
    ),
    ("no-data", as_json({"mime_type": "image/png"}), 422, "invalid_input"),
    ("no-mime", as_json({"data": b64(PNG)}), 422, "invalid_input"),
    ("json-array", as_json([b64(PNG)]), 422, "invalid_input"),
    ("json-null", as_json(None), 422, "invalid_input"),
    ("not-json", (b"{not json", "application/json"), 400, "bad_request"),
    ("deeply-nested-json", (b"[" * 100_000, "application/json"), 400, "bad_request"),
    (
        "json-huge-number",
        (b'{"data": 1' + b"0" * 5000 + b"}", "application/json"),
        400,
        "bad_request",
    ),
    ("not-utf8-json", (b"\xff\xfe{}", "application/json"), 400, "bad_request"),
    (
        "data-url-disagrees",
        as_json({"mime_type": "image/png", "data": "data:image/jpeg;base64," + b64(PNG)}),
        415,
        "unsupported_media_type",
    ),
    (
        "json-png-carrying-jpeg",
        as_json({"file_name": "a.png", "mime_type": "image/png", "data": b64(JPEG)}),
        415,
        "unsupported_media_type",
    ),
]

if samples.HAS_AVIF:
    AVIF = samples.encode("AVIF", seed=50)
    CASES += [
        ("avif-declared-png", raw(AVIF, "image/png"), 415, "unsupported_media_type"),
        ("png-declared-avif", raw(PNG, "image/avif"), 415, "unsupported_media_type"),
        ("avif-then-html", raw(AVIF + samples.HTML, "image/avif"), 422, "invalid_input"),
        ("truncated-avif", raw(AVIF[: len(AVIF) - 30], "image/avif"), 422, "invalid_input"),
        ("avif-header-only", raw(AVIF[:64], "image/avif"), 422, "invalid_input"),
    ]


@pytest.mark.parametrize(
    ("body", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_upload_is_refused_and_leaves_nothing(
    hosted: Hosted, body: tuple[bytes, str], status: int, code: str
) -> None:
    before = hosted.state()
    content, mime = body
    with hosted.server.client(hosted.token) as client:
        response = client.post("/api/images", content=content, headers={"Content-Type": mime})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert hosted.state() == before


MULTIPART: list[tuple[str, Callable[[httpx.Client], httpx.Response], int]] = [
    (
        "jpeg-declared-png",
        lambda c: c.post("/api/images", files={"file": ("a.png", JPEG, "image/png")}),
        415,
    ),
    (
        "html-file",
        lambda c: c.post("/api/images", files={"file": ("a.png", samples.HTML, "text/html")}),
        415,
    ),
    (
        "no-file-part",
        lambda c: c.post("/api/images", files={"image": ("a.png", PNG, "image/png")}),
        400,
    ),
    (
        "two-files",
        lambda c: c.post(
            "/api/images",
            files=[("file", ("a.png", PNG, "image/png")), ("file", ("b.png", PNG, "image/png"))],
        ),
        400,
    ),
    (
        "empty-file",
        lambda c: c.post("/api/images", files={"file": ("a.png", b"", "image/png")}),
        422,
    ),
    (
        "oversized-file",
        lambda c: c.post(
            "/api/images", files={"file": ("a.png", PNG + b"\x00" * 400_000, "image/png")}
        ),
        413,
    ),
    (
        "bad-boundary",
        lambda c: c.post(
            "/api/images",
            content=b"--x\r\ngarbage",
            headers={"Content-Type": "multipart/form-data; boundary=y"},
        ),
        400,
    ),
    (
        "bad-expiry",
        lambda c: c.post(
            "/api/images", files={"file": ("a.png", PNG, "image/png")}, data={"expires_in": "soon"}
        ),
        422,
    ),
]


@pytest.mark.parametrize(
    ("send", "status"), [m[1:] for m in MULTIPART], ids=[m[0] for m in MULTIPART]
)
def test_hostile_multipart_is_refused(
    hosted: Hosted, send: Callable[[httpx.Client], httpx.Response], status: int
) -> None:
    before = hosted.state()
    with hosted.server.client(hosted.token) as client:
        response = send(client)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert hosted.state() == before


def test_oversized_streamed_body_is_answered_before_it_ends(hosted: Hosted) -> None:
    """A chunked body (no Content-Length) gets 413 once it passes the cap, mid-stream."""
    host, port = hosted.server.url.removeprefix("http://").split(":")
    before = hosted.state()
    sent, answer = 0, b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            + f"Authorization: Bearer {hosted.token}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"10000\r\n" + b"\x00" * 0x10000 + b"\r\n"
        sock.setblocking(False)
        deadline = time.monotonic() + 20
        while sent < 50 * 0x10000 and not answer and time.monotonic() < deadline:
            try:
                sock.sendall(chunk)
                sent += 0x10000
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
            try:
                answer = sock.recv(4096)
            except BlockingIOError:
                time.sleep(0.005)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert sent < 20 * 0x10000  # answered after ~300 KB, long before the 3 MB we had to send
    assert hosted.state() == before


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer hk_000000000000_" + "a" * 43}, 401),
        ({"Authorization": "Basic x"}, 401),
    ],
)
def test_uploads_need_a_valid_token(hosted: Hosted, headers: dict[str, str], status: int) -> None:
    before = hosted.state()
    response = httpx.post(
        f"{hosted.server.url}/api/images",
        content=PNG,
        headers={"Content-Type": "image/png", **headers},
    )
    assert response.status_code == status
    assert hosted.state() == before


def test_a_token_scoped_all_may_upload(hosted: Hosted) -> None:
    from tests.support import create_token

    token = create_token(hosted.data_dir, "all-areas", "all")
    with hosted.server.client(token) as client:
        response = client.post("/api/images", content=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 201


def test_raw_nul_byte_in_multipart_file_name_is_refused(hosted: Hosted) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + PNG + b"\r\n--B--\r\n"
    )
    before = hosted.state()
    with hosted.server.client(hosted.token) as client:
        response = client.post(
            "/api/images",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=B"},
        )
    assert response.status_code == 422, response.text
    assert hosted.state() == before
