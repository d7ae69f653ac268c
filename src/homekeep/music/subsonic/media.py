"""Audio and pictures: stream (as it is, or transcoded), download, getCoverArt (sized)."""

from __future__ import annotations

from typing import Any

from starlette.responses import FileResponse, Response

from homekeep.music.artwork import shrunk_jpeg
from homekeep.music.streaming import file_response, plan
from homekeep.music.subsonic.calls import Call, Handler
from homekeep.music.subsonic.responses import NOT_FOUND, SubsonicError
from homekeep.music.subsonic.shapes import ALBUM, ARTIST

MAX_SIDE = 100_000  # past the original's size: the original
# the sizes apps ask for, kept on disk; any other size is made in memory each time
CACHED_SIDES = frozenset(
    {32, 48, 64, 96, 128, 150, 160, 192, 200, 256, 300, 320, 400, 450, 500, 512, 600, 640}
    | {750, 800, 1000, 1024, 1200, 1500, 2000, 2048}
)
_IMMUTABLE = {"Cache-Control": "public, max-age=86400"}


def stream(call: Call) -> Response:
    """The song as it is, unless ``format``, a lower ``maxBitRate`` or ``timeOffset`` asks
    for a transcode (a lossless format for a lossy file gives the file as it is)."""
    p = call.params
    path, fmt, kbps = call.svc.track_file(call.song_id(p.require("id")))
    wanted = (p.get("format") or "").lower() or None
    chosen = plan(
        fmt,
        wanted,
        p.integer("maxBitRate", 0, 0, 10_000),
        p.number("timeOffset", 0, 86_400),
        kbps,
        strict=False,
    )
    if chosen.target is None:
        return file_response(path, fmt, call.range_header)
    return call.transcoder.response(path, chosen)


def download(call: Call) -> Response:
    path, fmt, _ = call.svc.track_file(call.song_id(call.params.require("id")))
    return file_response(path, fmt, call.range_header, "attachment")


def _cover_hash(call: Call, given: str) -> str:
    """The image behind a cover id: an album's, an artist's first album's, or a song's."""
    svc = call.svc
    if given.startswith(ALBUM):
        album = svc.library.album(call.album_id(given))
        digest = album["cover_hash"]
    elif given.startswith(ARTIST):
        albums = svc.library.artist(call.artist_id(given))["albums"]
        digest = next((a["cover_hash"] for a in albums if a["cover_hash"]), None)
    else:
        track = svc.library.track(call.song_id(given))
        front = [p["hash"] for p in track["pictures"] if p["type"] == 3 and not p["error"]]
        digest = track["cover_hash"] or (front[0] if front else None)
    if not digest:
        raise SubsonicError(NOT_FOUND, f"{given[:40]!r} has no cover art")
    return str(digest)


def get_cover_art(call: Call) -> Response:
    """The cover as stored, or a JPEG no larger than ``size`` pixels (never upscaled)."""
    p = call.params
    side = p.integer("size", 0, 1, MAX_SIDE) if p.get("size") else None
    digest = _cover_hash(call, p.require("id"))
    svc = call.svc
    info: dict[str, Any] = svc.library.image(digest)
    largest = max(info["width"] or 0, info["height"] or 0)
    if side is None or info["error"] or side >= largest:
        path, media_type = svc.image_file(digest, "full")
        return FileResponse(path, media_type=media_type, headers=_IMMUTABLE)
    try:
        if side in CACHED_SIDES:
            return FileResponse(svc.artwork.sized_path(digest, side), media_type="image/jpeg",
                                headers=_IMMUTABLE)  # fmt: skip
        # any other size is made in memory, so odd sizes cannot fill the disk with copies
        data = shrunk_jpeg(svc.artwork.full_path(digest), side)[0]
    except (OSError, ValueError) as exc:
        raise SubsonicError(NOT_FOUND, f"the cover cannot be decoded: {exc}") from exc
    return Response(data, media_type="image/jpeg", headers=_IMMUTABLE)


HANDLERS: dict[str, Handler] = {
    "stream": stream,
    "download": download,
    "getCoverArt": get_cover_art,
}
