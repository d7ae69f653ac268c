"""Fuzzing the upload with real images mutated: never a 5xx, nothing left by a refusal.

Each example takes a real image (ffmpeg's testsrc2 in a format, some carrying EXIF, ICC
and XMP), maybe inserts a metadata block where the format keeps one, then flips bits,
cuts, splices in bytes of another image, or overwrites a length with an extreme value,
and uploads it in one of the three forms. Bounded to a few seconds.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homekeep.images.formats import sniff
from tests.images import makers
from tests.images.conftest import Hosted

EXAMPLES = 150
HEAD = 16  # the magic bytes are left alone: a file that is no image is only ever a 415
EXTREMES = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x01"]


@functools.cache
def seeds() -> dict[str, bytes]:
    """Real images to start from, with and without metadata."""
    b = makers.bases()
    exif, _ = makers.camera_exif("<")
    made = {name: b[name] for name in ("png", "apng", "jpeg", "gif", "webp", "webp-anim")}
    made["jpeg-exif-icc-xmp"] = makers.jpeg_insert(
        makers.jpeg_insert(b["jpeg"], 0xE2, b"ICC_PROFILE\x00\x01\x01" + makers.srgb()),
        0xE1,
        b"Exif\x00\x00" + exif,
    )
    made["png-exif"] = makers.png_insert(b["png"], makers.png_chunk(b"eXIf", exif))
    made["webp-exif-xmp"] = makers.webp_with(
        b["webp-lossless"],
        makers.riff_chunk(b"EXIF", exif),
        makers.riff_chunk(b"XMP ", makers.GPS_XMP),
    )
    if "avif" in b:
        made["avif"] = b["avif"]
    return made


def _insert(data: bytes, payload: bytes) -> bytes:
    """``data`` with ``payload`` as a metadata block where its format keeps one."""
    kind = sniff(data)
    if kind == "image/jpeg":
        return makers.jpeg_insert(data, 0xE1, b"Exif\x00\x00" + payload)
    if kind == "image/png":
        return makers.png_insert(data, makers.png_chunk(b"eXIf", payload))
    if kind == "image/webp":
        return makers.riff_fixed(data[8:] + makers.riff_chunk(b"EXIF", payload))
    if kind == "image/gif":
        return makers.gif_insert(data, makers.gif_application(b"XMP DataXMP", payload))
    return data


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed's name and its bytes, mutated one to three times."""
    name = draw(st.sampled_from(sorted(seeds())))
    data = bytearray(seeds()[name])
    if draw(st.booleans()):
        good, _ = makers.camera_exif(draw(st.sampled_from("<>")))
        payload = bytearray(good)
        for _ in range(draw(st.integers(0, 8))):
            payload[draw(st.integers(0, len(payload) - 1))] = draw(st.integers(0, 255))
        data = bytearray(_insert(bytes(data), bytes(payload)))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(HEAD, max(HEAD, len(data) - 1)))
        how = draw(st.sampled_from(["flip", "cut", "splice", "extreme"]))
        if how == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[pos:]
        elif how == "splice":
            other = seeds()[draw(st.sampled_from(sorted(seeds())))]
            start = draw(st.integers(0, len(other)))
            data[pos:pos] = other[start : start + draw(st.integers(1, 256))]
        else:
            data[pos : pos + 4] = draw(st.sampled_from(EXTREMES))
    return name, bytes(data)


def send_json(c: httpx.Client, data: bytes, mime: str) -> httpx.Response:
    doc = {"mime_type": mime, "data": base64.b64encode(data).decode()}
    return c.post("/api/images", json=doc)


def send_multipart(c: httpx.Client, data: bytes, mime: str) -> httpx.Response:
    return c.post("/api/images", files={"file": ("fuzz", data, mime)})


def send_raw(c: httpx.Client, data: bytes, mime: str) -> httpx.Response:
    return c.post("/api/images", content=data, headers={"Content-Type": mime})


FORMS: list[Callable[[httpx.Client, bytes, str], httpx.Response]] = [
    send_json,
    send_multipart,
    send_raw,
]


def test_mutated_real_images_never_fail_the_server(hosted: Hosted) -> None:
    with hosted.server.client(hosted.token) as client:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(mutant=mutants(), form=st.sampled_from(FORMS))
        def upload(mutant: tuple[str, bytes], form: Callable[..., httpx.Response]) -> None:
            name, data = mutant
            before = hosted.state()
            response = form(client, data, sniff(seeds()[name]))
            assert response.status_code < 500, response.text
            if response.status_code == 201:
                assert client.delete(f"/api/images/{response.json()['id']}").status_code == 200
                return
            assert 400 <= response.status_code < 500
            error = response.json()["error"]
            assert set(error) == {"code", "message"}
            assert error["message"]
            assert hosted.state() == before  # no file, no temp file, no row

        upload()
    assert httpx.get(f"{hosted.server.url}/healthz").status_code == 200
