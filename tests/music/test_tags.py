# mypy: disable-error-code="no-untyped-call"
"""Tags, stream facts and embedded pictures read from real files of every format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homekeep.music.artwork import ArtworkStore
from homekeep.music.tags import read_file
from tests.music import media

FULL_TAGS = {
    "title": "Café Song",
    "artist": "The Artist",
    "album": "Großes Album",
    "album_artist": "Album Artist",
    "track": 3,
    "track_total": 12,
    "disc": 2,
    "disc_total": 2,
    "date": "2001-05-01",
    "genre": "Jazz",
    "compilation": True,
    "mb_album_id": "0a6c2a9f-3b1e-4c1f-9c0f-2f9b0d3e1a11",
}


@pytest.mark.parametrize("fmt", media.FORMATS)
def test_every_format_reads_its_tags_and_pictures(
    fmt: str, clips: dict[str, Path], covers: dict[str, bytes], tmp_path: Path
) -> None:
    path = media.write_track(
        clips[fmt],
        fmt,
        tmp_path / f"song.{media.extension(fmt)}",
        FULL_TAGS,
        ((3, covers["large"]), (4, covers["png"])),
    )
    store = ArtworkStore(tmp_path / "images")
    result = read_file(1, path, path.stat().st_size, store)
    assert result.error is None
    assert result.detected == fmt
    tags = result.tags
    for key in ("title", "artist", "album", "album_artist", "genre", "date", "mb_album_id"):
        assert tags[key] == FULL_TAGS[key], key
    assert (tags["track"], tags["disc"], tags["disc_total"]) == (3, 2, 2)
    if fmt != "wma":  # WM/TrackNumber has no total
        assert tags["track_total"] == 12
    assert tags["year"] == 2001
    assert tags["compilation"] is True
    assert tags["duration"] == pytest.approx(1.0, abs=0.1)
    assert tags["channels"] == 2
    types = sorted(p.type for p in result.pictures)
    assert types == ([0, 3] if fmt in ("aac", "alac") else [3, 4])  # MP4 covr has no types
    front = next(p for p in result.pictures if p.type == 3)
    assert store.full_path(front.hash).read_bytes() == covers["large"]


@pytest.mark.parametrize("fmt", media.FORMATS)
def test_untagged_files_read_with_empty_tags(
    fmt: str, clips: dict[str, Path], tmp_path: Path
) -> None:
    result = read_file(1, clips[fmt], clips[fmt].stat().st_size, ArtworkStore(tmp_path))
    assert result.error is None
    assert result.tags["title"] is None
    assert result.tags["album"] is None
    assert result.tags["compilation"] is False
    assert result.pictures == []


def test_a_vanished_file_is_reported_as_gone_not_broken(tmp_path: Path) -> None:
    result = read_file(1, tmp_path / "gone.mp3", 100, ArtworkStore(tmp_path))
    assert result.vanished
    assert result.error is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3/12", (3, 12)),
        (" 07 ", (7, None)),
        ("1 / 2", (1, 2)),
        ("x", (None, None)),
        ("0", (None, None)),
    ],
)
def test_track_numbers_parse_as_people_write_them(
    text: str, expected: tuple[int | None, int | None], clips: dict[str, Path], tmp_path: Path
) -> None:
    path = media.write_track(clips["flac"], "flac", tmp_path / "n.flac", {"title": "n"})
    media.set_tag(path, "TRACKNUMBER", text)
    result = read_file(1, path, path.stat().st_size, ArtworkStore(tmp_path))
    assert (result.tags["track"], result.tags["track_total"]) == expected


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ext=st.sampled_from(["mp3", "flac", "ogg", "opus", "ape", "m4a", "wv", "wma", "aiff", "wav"]),
    head=st.sampled_from([b"", b"ID3", b"fLaC", b"OggS", b"MAC ", b"wvpk", b"RIFF", b"FORM"]),
    body=st.binary(max_size=2000),
)
def test_any_bytes_under_any_audio_name_give_a_result_not_a_crash(
    ext: str, head: bytes, body: bytes, tmp_path: Path
) -> None:
    path = tmp_path / f"fuzz.{ext}"
    path.write_bytes(head + body)
    result = read_file(1, path, path.stat().st_size, ArtworkStore(tmp_path / "img"))
    assert result.error is not None or result.detected is not None
    assert result.fingerprint is not None


MB = {
    "mb_recording_id": "11111111-1111-1111-1111-111111111111",
    "mb_track_id": "22222222-2222-2222-2222-222222222222",
    "mb_artist_id": "33333333-3333-3333-3333-333333333333",
    "mb_album_artist_id": "44444444-4444-4444-4444-444444444444",
    "mb_release_group_id": "55555555-5555-5555-5555-555555555555",
}
# the names MusicBrainz Picard writes, per tag system
_MB_NAMES = {
    "vorbis": {
        "mb_recording_id": "MUSICBRAINZ_TRACKID",
        "mb_track_id": "MUSICBRAINZ_RELEASETRACKID",
        "mb_artist_id": "MUSICBRAINZ_ARTISTID",
        "mb_album_artist_id": "MUSICBRAINZ_ALBUMARTISTID",
        "mb_release_group_id": "MUSICBRAINZ_RELEASEGROUPID",
    },
    "mp4": {
        "mb_recording_id": "----:com.apple.iTunes:MusicBrainz Track Id",
        "mb_track_id": "----:com.apple.iTunes:MusicBrainz Release Track Id",
        "mb_artist_id": "----:com.apple.iTunes:MusicBrainz Artist Id",
        "mb_album_artist_id": "----:com.apple.iTunes:MusicBrainz Album Artist Id",
        "mb_release_group_id": "----:com.apple.iTunes:MusicBrainz Release Group Id",
    },
    "asf": {
        "mb_recording_id": "MusicBrainz/Track Id",
        "mb_track_id": "MusicBrainz/Release Track Id",
        "mb_artist_id": "MusicBrainz/Artist Id",
        "mb_album_artist_id": "MusicBrainz/Album Artist Id",
        "mb_release_group_id": "MusicBrainz/Release Group Id",
    },
}


def _write_mb(path: Path, fmt: str) -> None:
    # mypy: the mutagen classes are untyped
    from mutagen import File
    from mutagen.apev2 import APEv2
    from mutagen.id3 import TXXX, UFID
    from mutagen.mp4 import MP4FreeForm

    if fmt in ("mp3", "aiff", "wav"):
        audio: Any = File(path)
        audio.tags.add(UFID(owner="http://musicbrainz.org", data=MB["mb_recording_id"].encode()))
        for key, desc in (
            ("mb_track_id", "MusicBrainz Release Track Id"),
            ("mb_artist_id", "MusicBrainz Artist Id"),
            ("mb_album_artist_id", "MusicBrainz Album Artist Id"),
            ("mb_release_group_id", "MusicBrainz Release Group Id"),
        ):
            audio.tags.add(TXXX(encoding=3, desc=desc, text=[MB[key]]))
        audio.save()
    elif fmt in ("ape", "wavpack"):
        ape = APEv2(path)
        for key, name in _MB_NAMES["vorbis"].items():
            ape[name] = MB[key]
        ape.save(path)
    else:
        system = {"aac": "mp4", "alac": "mp4", "wma": "asf"}.get(fmt, "vorbis")
        audio = File(path)
        for key, name in _MB_NAMES[system].items():
            audio[name] = [MP4FreeForm(MB[key].encode()) if system == "mp4" else MB[key]]
        if system == "asf":  # Picard's names for the totals in ASF
            audio["TotalTracks"] = ["12"]
        audio.save()


@pytest.mark.parametrize("fmt", media.FORMATS)
def test_every_format_reads_musicbrainz_ids_and_totals(
    fmt: str, clips: dict[str, Path], tmp_path: Path
) -> None:
    path = media.write_track(clips[fmt], fmt, tmp_path / f"song.{media.extension(fmt)}", FULL_TAGS)
    _write_mb(path, fmt)
    result = read_file(1, path, path.stat().st_size, ArtworkStore(tmp_path / "images"))
    assert result.error is None
    for key, value in MB.items():
        assert result.tags[key] == value, key
    assert result.tags["mb_album_id"] == FULL_TAGS["mb_album_id"]
    assert (result.tags["track_total"], result.tags["disc_total"]) == (12, 2)
    assert result.tags["compilation"] is True
