# mypy: disable-error-code="no-untyped-call"
"""Embedded pictures: the old Vorbis COVERART field, and WM/Picture blobs of any bytes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.music.artwork import ArtworkStore
from homekeep.music.pictures import asf_picture
from homekeep.music.tags import read_file
from tests.music import media


@settings(max_examples=150, deadline=None)
@given(blob=st.binary(max_size=300))
def test_asf_picture_parsing_never_fails(blob: bytes) -> None:
    parsed = asf_picture(blob)
    assert parsed is None or isinstance(parsed[3], bytes)


def test_the_old_vorbis_coverart_field_is_a_front_cover(
    clips: dict[str, Path], covers: dict[str, bytes], tmp_path: Path
) -> None:
    import base64

    from mutagen import File

    path = media.write_track(clips["vorbis"], "vorbis", tmp_path / "old.ogg", {"title": "T"})
    audio = File(path)
    audio["COVERART"] = [base64.b64encode(covers["small"]).decode("ascii")]
    audio.save()
    store = ArtworkStore(tmp_path / "images")
    result = read_file(1, path, path.stat().st_size, store)
    assert [(p.type, p.mime) for p in result.pictures] == [(3, "image/jpeg")]
    assert store.full_path(result.pictures[0].hash).read_bytes() == covers["small"]
