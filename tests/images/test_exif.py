"""The strict EXIF reader and its in-place edits, on their own."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from homekeep.images import exif
from tests.images import makers


def pillow_reads(tiff: bytes) -> Image.Exif:
    """The block as Pillow (an independent reader) sees it."""
    seen = Image.Exif()
    seen.load(exif.EXIF_HEADER + tiff)
    return seen


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_camera_block_is_read_whole(order: str) -> None:
    tiff = exif.parse(makers.camera_exif(order)[0])
    assert sorted(d.via for d in tiff.directories) == [0, 0, exif.EXIF_IFD, exif.GPS_IFD]
    assert tiff.orientation() == 6
    assert tiff.has_location()


@pytest.mark.parametrize("order", ["<", ">"])
def test_the_location_goes_and_everything_else_stays_in_place(order: str) -> None:
    good, _ = makers.camera_exif(order)
    edited = exif.edit(good, strip_gps=True, upright=False)
    assert len(edited) == len(good)
    assert not exif.parse(edited).has_location()
    seen = pillow_reads(edited)
    assert ExifTags.IFD.GPSInfo not in seen
    assert b"51" not in edited[edited.index(b"HC-1 Pocket") :]  # the latitude's bytes are zeroed
    assert seen[ExifTags.Base.Make] == "HomeCam"
    assert seen[ExifTags.Base.Orientation] == 6
    assert seen.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:05:01 12:00:00"


def test_upright_resets_the_orientation_only() -> None:
    good, _ = makers.camera_exif(">")
    edited = exif.edit(good, strip_gps=False, upright=True)
    assert len(edited) == len(good)
    assert exif.parse(edited).orientation() == 1
    assert exif.parse(edited).has_location()
    assert pillow_reads(edited)[ExifTags.Base.Orientation] == 1


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("cut-at-6", "too short"),
        ("not-tiff", "no TIFF header"),
        ("ifd0-past-end", "outside"),
        ("ifd0-inside-header", "outside"),
        ("ifd0-next-is-ifd0", "loop"),
        ("ifd1-next-is-ifd0", "loop"),
        ("gps-is-ifd0", "loop"),
        ("exif-is-gps", "loop"),
        ("gps-past-end", "outside"),
        ("ifd0-count-max", "at most"),
        ("make-count-huge", "outside"),
        ("make-value-past-end", "outside"),
        ("type-unknown", "unknown type"),
        ("gps-pointer-as-text", "should point to a directory"),
        ("gps-pointer-count-2", "should point to a directory"),
        ("chain-of-20", "more than 16 directories"),
        ("wide-5000", "at most"),
    ],
)
def test_broken_blocks_are_refused_with_a_reason(name: str, why: str) -> None:
    tiff = dict(makers.exif_cases("<"))[name]
    with pytest.raises(exif.ExifError, match=why):
        exif.parse(tiff)


@pytest.mark.parametrize("name", ["orientation-as-text", "orientation-9", "orientation-count-2"])
def test_a_nonsense_orientation_reads_as_upright(name: str) -> None:
    assert exif.parse(dict(makers.exif_cases("<"))[name]).orientation() == 1


def test_a_block_whose_parts_overlap_is_refused_rather_than_half_edited() -> None:
    good, at = makers.camera_exif("<")
    # The GPS directory placed on top of IFD0's own entries: zeroing it would wreck IFD0.
    overlapping = bytearray(good)
    struct.pack_into("<I", overlapping, at["ifd0:0x8825"] + 8, at["ifd0"])
    with pytest.raises(exif.ExifError):
        exif.edit(bytes(overlapping), strip_gps=True, upright=False)


@settings(max_examples=300, deadline=None, database=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 400),
    order=st.sampled_from("<>"),
)
def test_any_damage_is_refused_or_edited_safely(
    flips: list[tuple[int, int]], cut: int, order: str
) -> None:
    data = bytearray(makers.camera_exif(order)[0])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    tiff = bytes(data[:cut])
    try:
        edited = exif.edit(tiff, strip_gps=True, upright=True)
    except exif.ExifError:
        return
    assert len(edited) == len(tiff)
    read = exif.parse(edited)
    assert not read.has_location()
    assert read.orientation() == 1


def test_a_jpeg_keeps_its_pixels_and_loses_only_the_location() -> None:
    """The in-place edit inside a real file: same length, same bytes outside the block."""
    from homekeep.images.formats import FORMATS
    from homekeep.images.metadata import clean

    good, _ = makers.camera_exif("<", orientation=1)
    data = makers.jpeg_insert(makers.bases()["jpeg"], 0xE1, exif.EXIF_HEADER + good)
    cleaned = clean(data, FORMATS["image/jpeg"], strip_gps=True, apply_orientation=True)
    assert len(cleaned) == len(data)
    start = data.index(good)
    assert cleaned[:start] == data[:start]
    assert cleaned[start + len(good) :] == data[start + len(good) :]
    with Image.open(io.BytesIO(cleaned)) as im:
        assert ExifTags.IFD.GPSInfo not in im.getexif()
        assert im.getexif()[ExifTags.Base.Model] == "HC-1 Pocket"
