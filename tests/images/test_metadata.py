"""Broken metadata in real uploads: stored without it or refused, never a 500."""

from __future__ import annotations

import io
import struct
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image

from tests.images import samples
from tests.images.conftest import UPLOADERS, Hosted


def jpeg_with_app1(payload: bytes) -> bytes:
    """A real JPEG with one more APP1 segment, right after its SOI."""
    data = samples.encode("JPEG", seed=70)
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


INVALID_EXIF = jpeg_with_app1(b"Exif\x00\x00" + b"garbage!garbage")
CUT_SHORT_EXIF = jpeg_with_app1(b"Exif\x00\x00" + samples.gps_exif(orientation=6)[:11])


@pytest.mark.parametrize("send", UPLOADERS)
@pytest.mark.parametrize("data", [INVALID_EXIF, CUT_SHORT_EXIF], ids=["invalid", "cut-short"])
def test_a_jpeg_with_broken_exif_is_stored_without_it(
    hosted: Hosted, send: Any, data: bytes
) -> None:
    response = send(hosted, data, "image/jpeg", "phone.jpg")
    assert response.status_code == 201, response.text
    served = httpx.get(response.json()["url"]).content
    assert len(served) == len(data)  # the segment is blanked in place, nothing else moves
    assert b"Exif\x00\x00" not in served
    with Image.open(io.BytesIO(served)) as im:
        assert im.size == (64, 48)
        assert dict(im.getexif()) == {}
        assert ExifTags.IFD.GPSInfo not in im.getexif()
