"""The parsers on their own: sniffing, structure, base64, names, ids, the rate limiter."""

from __future__ import annotations

import base64
import string
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from homekeep.core.db import Database
from homekeep.core.errors import InvalidInput, RateLimited, UnsupportedMedia
from homekeep.images.config import BASE62, PILLOW_BOMB_PIXELS
from homekeep.images.formats import FORMATS, check_structure, check_type, decode, sniff
from homekeep.images.ids import IdGenerator
from homekeep.images.ratelimit import RateLimiter
from homekeep.images.store import MIGRATIONS, ImageStore
from homekeep.images.uploads import clean_name, decode_base64
from tests.images import samples

ALL = tuple(FORMATS)


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (samples.png(), "image/png"),
        (samples.encode("JPEG"), "image/jpeg"),
        (samples.encode("GIF"), "image/gif"),
        (samples.encode("WEBP"), "image/webp"),
        (samples.HTML, None),
        (samples.SVG, None),
        (b"", None),
        (b"RIFF\x00\x00\x00\x00WAVE", None),
    ],
)
def test_sniff(data: bytes, mime: str | None) -> None:
    assert sniff(data) == mime


@pytest.mark.skipif(not samples.HAS_AVIF, reason="this Pillow has no AVIF")
def test_avif_is_sniffed_and_decoded() -> None:
    data = samples.encode("AVIF")
    fmt = check_type(data, "image/avif", ALL)
    check_structure(data, fmt)
    assert decode(data, fmt, max_pixels=10**6, max_frames=1, max_total_pixels=10**8).width == 64


@pytest.mark.parametrize("declared", ["image/jpg", "IMAGE/JPEG", "image/jpeg; charset=x"])
def test_declared_type_aliases(declared: str) -> None:
    assert check_type(samples.encode("JPEG"), declared, ALL).ext == "jpg"


def test_frame_limit() -> None:
    data = samples.animated_gif(5)
    fmt = FORMATS["image/gif"]
    assert decode(data, fmt, max_pixels=10**6, max_frames=5, max_total_pixels=10**8).frames == 5
    with pytest.raises(InvalidInput, match="more than 4 frames"):
        decode(data, fmt, max_pixels=10**6, max_frames=4, max_total_pixels=10**8)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_checks(data: bytes) -> None:
    for prefix in (
        b"",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"\xff\xd8\xff",
        b"RIFF\x10\x00\x00\x00WEBP",
    ):
        blob = prefix + data
        try:
            fmt = check_type(blob, sniff(blob) or "image/png", ALL)
            check_structure(blob, fmt)
            decode(blob, fmt, max_pixels=10**6, max_frames=10, max_total_pixels=10**8)
        except (InvalidInput, UnsupportedMedia):
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_base64_round_trips(data: bytes) -> None:
    text = base64.b64encode(data).decode()
    assert decode_base64(text) == (data, None)
    assert decode_base64("data:image/gif;base64," + text) == (data, "image/gif")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_base64_decoding_is_strict_or_refuses(text: str) -> None:
    try:
        data, _ = decode_base64(text)
    except InvalidInput:
        return
    assert base64.b64encode(data).decode() == text.split(",", 1)[-1] or text.startswith("data:")


BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_clean_name_is_a_bounded_single_name(raw: str) -> None:
    controls = [c for c in raw if ord(c) < 32 or 127 <= ord(c) <= 159 or c in BIDI]
    try:
        name = clean_name(raw, 100)
    except InvalidInput:
        assert controls
        return
    assert not controls
    assert len(name) <= 100
    assert "/" not in name
    assert "\\" not in name


def test_ids_grow_when_collisions_pile_up(tmp_path: Path) -> None:
    ids = IdGenerator("ab", 6)  # only 64 ids of length 6
    store = ImageStore(
        Database(tmp_path / "i.sqlite", area="images", migrations=MIGRATIONS), tmp_path / "f", ids
    )
    made = set()
    for seed in range(150):
        record, _ = store.add(
            samples.png(seed=seed),
            ext="png",
            mime_type="image/png",
            file_name="",
            width=64,
            height=48,
            owner=None,
            expires_at=None,
        )
        made.add(record.id)
    assert len(made) == 150
    assert ids.length > 6
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == sorted(f"{i}.png" for i in made)
    store.db.close()
    for configured, expected in ((6, ids.length), (12, 12)):  # grown is kept; a larger config wins
        again = IdGenerator("ab", configured)
        reopened = ImageStore(
            Database(tmp_path / "i.sqlite", area="images", migrations=MIGRATIONS),
            tmp_path / "f",
            again,
        )
        assert again.length == expected
        reopened.db.close()


def test_default_ids_are_base62_of_eight() -> None:
    ids = IdGenerator(BASE62, 8)
    drawn = {ids.new() for _ in range(2000)}
    assert len(drawn) == 2000
    assert all(len(i) == 8 and set(i) <= set(string.ascii_letters + string.digits) for i in drawn)


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    limiter.hit("a")
    limiter.hit("a")
    with pytest.raises(RateLimited) as err:
        limiter.hit("a")
    assert err.value.retry_after == 1
    limiter.hit("b")  # another client has its own bucket
    now[0] = 1.0
    limiter.hit("a")
    RateLimiter(per_minute=0, burst=1).hit("a")


def test_rate_limiter_gives_a_burst_once_across_threads() -> None:
    """Many threads on one bucket: exactly ``burst`` hits pass while the clock stands still."""
    limiter = RateLimiter(per_minute=1, burst=50, clock=lambda: 0.0)
    passed: list[int] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        for _ in range(400):
            try:
                limiter.hit("shared")
                passed.append(1)
            except RateLimited:
                pass

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads all the time: an unguarded bucket races
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    assert len(passed) == 50


def test_max_pixels_cap_is_pillows_bomb_limit() -> None:
    assert Image.MAX_IMAGE_PIXELS == PILLOW_BOMB_PIXELS


def test_total_pixels_of_all_frames_are_capped() -> None:
    gif = samples.gif_of_tiny_updates(100, 20)  # 20 frames of 10,000 pixels
    fmt = FORMATS["image/gif"]
    ok = decode(gif, fmt, max_pixels=10**4, max_frames=100, max_total_pixels=200_000)
    assert ok.frames == 20
    with pytest.raises(InvalidInput, match="frame 11 add up to 110000 pixels") as caught:
        decode(gif, fmt, max_pixels=10**4, max_frames=100, max_total_pixels=109_999)
    assert caught.value.code == "too_many_pixels"
