"""A property test of the Subsonic endpoints: whatever the parameters, an answer or a
Subsonic error, never a crash (the HTTP layer would turn one into a 500)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homekeep.core.errors import HomekeepError
from homekeep.core.users import User
from homekeep.music.streaming import Transcoder
from homekeep.music.subsonic import router
from homekeep.music.subsonic.calls import Call, Scans
from homekeep.music.subsonic.params import Params
from homekeep.music.subsonic.responses import SubsonicError, render
from homekeep.music.userdata import UserData
from tests.music.conftest import Library

NAMES = ("id", "size", "offset", "count", "type", "query", "songCount", "songOffset",
         "albumCount", "artistCount", "fromYear", "toYear", "genre", "maxBitRate",
         "timeOffset", "format", "position", "current", "time", "submission",
         "musicFolderId", "name", "playlistId", "songId", "songIndexToRemove", "albumId",
         "artistId", "username")  # fmt: skip
ODD = ["", '""', "al-", "ar-", "1", "0", "-1", "nan", "inf", "1e9", "random", "newest",
       "byYear", "byGenre", "opus", "flac", "raw", "../x.m3u8", "true", "false"]  # fmt: skip
VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(ODD),
    st.text(max_size=40),
)
ENDPOINTS = sorted(set(router.HANDLERS) - {"startScan"})
USER = User(1, "ann", False, ("music",), "2026-01-01", None, None)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    params=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=6),
)
def test_any_parameters_give_an_answer_or_a_subsonic_error(
    small_library: Library, tmp_path: Path, endpoint: str, params: list[tuple[str, str]]
) -> None:
    svc = small_library.service(playlists_dir=tmp_path / "lists")
    call = Call(Params(params), USER, svc, UserData(svc.db), Transcoder(2), Scans(svc))
    try:
        result = router.HANDLERS[endpoint](call)
    except SubsonicError:
        return
    except HomekeepError as exc:
        status = exc.status_code  # a 5xx would be a crash the client cannot fix
        assert status < 500, exc.message  # noqa: PT017
        return
    if isinstance(result, dict):
        render(result, "xml", None)
        render(result, "json", None)


@pytest.fixture
def small_library(library: Library) -> Library:
    library.add("Band/Album/01", "flac", title="One", artist="Band", album="Album", track=1,
                genre="Rock", date="2001")  # fmt: skip
    library.add("Band/Album/02", "mp3", title="Two", artist="Band", album="Album", track=2)
    library.scan()
    return library


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_tags_xml_cannot_carry_are_replaced(fmt: str) -> None:
    """A control character in a tag, or a file name that is not UTF-8, still parses."""
    import json
    import xml.etree.ElementTree as ET

    answer = render({"song": {"title": "bad\x01tag", "path": "caf\udce9.mp3"}}, fmt, None)
    body = bytes(answer.body)
    if fmt == "xml":
        song = ET.fromstring(body).find("{http://subsonic.org/restapi}song")  # noqa: S314
        assert song is not None
        title, path = song.get("title"), song.get("path")
    else:
        song = json.loads(body)["subsonic-response"]["song"]
        title, path = song["title"], song["path"]
    assert (title, path) == ("bad\ufffdtag", "caf\ufffd.mp3")
