"""A library for the player tests (streams, playlists, Subsonic) served by `homekeep serve`."""

from __future__ import annotations

import subprocess
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.music import media
from tests.support import Server, add_user, create_token, run_cli, serve

PASSWORD = "subsonic-pass-1"
CAFE_NFD = unicodedata.normalize("NFD", "Café")


@dataclass
class Player:
    """The running server, its folders, and who may log in to it."""

    server: Server
    root: Path
    data: Path
    token: str

    @property
    def port(self) -> int:
        return int(self.server.url.rsplit(":", 1)[1])

    def client(self) -> httpx.Client:
        return self.server.client(self.token)

    def rest(self, endpoint: str, user: str = "ann", **params: str | list[str]) -> httpx.Response:
        """A Subsonic call with u + p, JSON unless ``f`` is given."""
        query: dict[str, str | list[str]] = {"u": user, "p": PASSWORD, "v": "1.16.1", "c": "test",
                                             "f": "json", **params}  # fmt: skip
        with httpx.Client(base_url=self.server.url, timeout=30) as c:
            return c.get(f"/rest/{endpoint}", params=query)


def long_track(target: Path, seconds: int) -> Path:
    """A FLAC of a sine tone lasting ``seconds`` (long enough to stop a transcode midway)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
         "-ac", "2", "-c:a", "flac", str(target)],
        check=True,
        timeout=120,
    )  # fmt: skip
    media.set_tag(target, "TITLE", "Long")
    media.set_tag(target, "ARTIST", "Tone")
    media.set_tag(target, "ALBUM", "Tones")
    return target


def build(base: Path, clips: dict[str, Path], covers: dict[str, bytes]) -> tuple[Path, Path]:
    """Write and scan the library; add the users ann (music), bob (no music) and root."""
    root, data = base / "music", base / "data"
    for n in (1, 2, 3):
        media.write_track(clips["flac"], "flac", root / "Band" / "Album" / f"0{n}.flac",
                          {"title": f"Song {n}", "artist": "Band", "album": "Album", "track": n,
                           "date": "2010", "genre": "Rock"},
                          ((3, covers["large"]),))  # fmt: skip
    for n, artist in enumerate(("Ann", "Bob"), 1):
        media.write_track(clips["mp3"], "mp3", root / "Comp" / f"0{n}.mp3",
                          {"title": f"Hit {n}", "artist": artist, "album": "Hits", "track": n,
                           "compilation": True, "date": "1999", "genre": "Pop"})  # fmt: skip
    media.write_track(clips["wavpack"], "wavpack", root / "Trio" / "Live" / "01.wv",
                      {"title": "Blue", "artist": "Trio", "album": "Live", "track": 1,
                       "genre": "Jazz", "date": "1965"})  # fmt: skip
    media.write_track(clips["aiff"], "aiff", root / "Trio" / "Live" / "02.aiff",
                      {"title": "Green", "artist": "Trio", "album": "Live", "track": 2,
                       "genre": "Jazz", "date": "1965"})  # fmt: skip
    media.write_track(clips["flac"], "flac", root / "Cafés" / f"{CAFE_NFD}.flac",
                      {"title": "Crème", "artist": "Zoë", "album": "Café", "track": 1})  # fmt: skip
    long_track(root / "Tone" / "Tones" / "01.flac", 240)
    result = run_cli("music", "scan", root, data_dir=data)
    assert result.returncode == 0, result.stderr
    add_user(data, "root", "admin-pass-123", admin=True)
    add_user(data, "ann", "login-pass-123", "music")
    add_user(data, "bob", "login-pass-456", "music", "images")
    for name in ("ann", "bob", "root"):
        done = run_cli("music", "subsonic-password", name, "--password-stdin",
                       data_dir=data, input=PASSWORD + "\n")  # fmt: skip
        assert done.returncode == 0, done.stderr
    # bob keeps his Subsonic password but loses the music area: his apps are refused
    assert run_cli("user", "access", "bob", "--area", "images", data_dir=data).returncode == 0
    return root, data


@contextmanager
def running(base: Path, clips: dict[str, Path], covers: dict[str, bytes]) -> Iterator[Player]:
    root, data = build(base, clips, covers)
    token = create_token(data, "player", "music")
    with serve(data) as srv:
        yield Player(srv, root, data, token)
