"""The music API under /api/music: what the player reads, and the reports."""

from __future__ import annotations

import pathlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse

from homekeep.core.area import AreaContext, Summary, WebParts
from homekeep.core.auth import Caller, require_scope
from homekeep.core.limits import Int64
from homekeep.core.limits import Offset as Skip
from homekeep.music.folders import Folders, folder_routes
from homekeep.music.pages import pages_router
from homekeep.music.player_api import player_routes
from homekeep.music.queue_api import queue_routes
from homekeep.music.service import Service, Size, open_service
from homekeep.music.streaming import Transcoder
from homekeep.music.subsonic.router import subsonic_router

_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Offset = Annotated[Skip, Query(description="Items to skip.")]
TrackId = Annotated[Int64, Path(description="A track id.")]
Search = Annotated[str | None, Query(max_length=200, description="Substring to look for.")]
Id = Annotated[str | None, Query(max_length=64)]


def build(ctx: AreaContext) -> WebParts:
    """Return the routers of the music area.

    The routes are plain functions: FastAPI runs them on worker threads, and the
    database gives each thread its own connection.
    """
    svc = open_service(ctx)
    api = APIRouter(dependencies=[Depends(require_scope("music"))])
    _browse_routes(api, svc)
    _command_routes(api, svc)
    transcoder = Transcoder(svc.config.max_transcodes)
    player_routes(api, svc, transcoder)
    queue_routes(api, svc)
    folder_routes(api, Folders(svc.db, svc.library))
    # the Subsonic API needs core's users: only `homekeep serve` has them
    rest = subsonic_router(svc, ctx.accounts, transcoder) if ctx.accounts else None

    async def summary(caller: Caller) -> Summary:
        return await svc.db.run(svc.library.totals)

    async def close() -> None:
        svc.close()

    return WebParts(api=api, pages=pages_router(), root=rest, shutdown=[close], summary=summary)


def _file(found: tuple[pathlib.Path, str]) -> FileResponse:
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers=_IMMUTABLE)


def _browse_routes(api: APIRouter, svc: Service) -> None:
    """What the player reads: artists, albums, groups, tracks, genres, images."""
    library = svc.library

    @api.get("/artists")
    def artists(
        q: Search = None,
        role: Literal["any", "album_artist"] = "any",
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Artists by name: every one, or album artists only ("Various Artists" for
        compilations, not each artist on them)."""
        return library.artists(q=q, album_artists=role == "album_artist", limit=limit,
                               offset=offset)  # fmt: skip

    @api.get("/artists/{artist_id}")
    def artist(artist_id: str) -> dict[str, Any]:
        """One artist with their albums, oldest first (``appears_on``: on others' albums)."""
        return library.artist(artist_id)

    @api.get("/albums")
    def albums(
        q: Search = None,
        artist_id: Id = None,
        release_type: Id = None,
        compilation: bool | None = None,
        genre: Annotated[str | None, Query(max_length=200)] = None,
        decade: Annotated[
            int | None, Query(ge=-1, le=9990, description="1990 for the 1990s, -1: no year")
        ] = None,
        sort: Literal["title", "artist", "year", "added"] = "artist",
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Albums, filtered by album artist or group; sorted (``added``: newest first)."""
        return library.albums(
            q=q,
            artist_id=artist_id,
            release_type=release_type,
            compilation=compilation,
            genre=genre,
            decade=decade,
            sort=sort,
            limit=limit,
            offset=offset,
        )

    @api.get("/albums/{album_id}")
    def album(album_id: str) -> dict[str, Any]:
        """One album with its tracks in disc and track order."""
        return library.album(album_id)

    @api.get("/albums/{album_id}/cover")
    def album_cover(album_id: str, size: Size = "thumb") -> FileResponse:
        """The album's front cover: the original, or the thumbnail."""
        return _file(svc.album_cover(album_id, size))

    @api.get("/album-groups")
    def album_groups(
        by: Literal["album_artist", "release_type", "compilation", "genre", "decade"] = (
            "album_artist"
        ),
    ) -> list[dict[str, Any]]:
        """Album groups: by album artist, release type, compilation, genre or decade."""
        return library.groups(by)

    @api.get("/tracks")
    def tracks(
        q: Search = None,
        album_id: Id = None,
        artist_id: Id = None,
        genre: Annotated[str | None, Query(max_length=200)] = None,
        sort: Literal["artist", "title", "album", "year", "duration", "format"] = "artist",
        desc: bool = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Tracks, filtered by album, by any of their artists or genres; sorted; paginated."""
        return library.tracks(q=q, album_id=album_id, artist_id=artist_id, genre=genre,
                              sort=sort, desc=desc, limit=limit, offset=offset)  # fmt: skip

    @api.get("/genres")
    def genres(q: Search = None, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
        """Genres with their track counts (every value of multi-valued genre tags)."""
        return library.genres(q=q, limit=limit, offset=offset)

    @api.get("/tracks/{track_id}")
    def track(track_id: TrackId) -> dict[str, Any]:
        """One track with every embedded picture (front, back, artist...)."""
        return library.track(track_id)

    @api.get("/images/{digest}")
    def image(digest: str, size: Size = "full") -> FileResponse:
        """An image by content hash: the original bytes, or the JPEG thumbnail."""
        return _file(svc.image_file(digest, size))


def _command_routes(api: APIRouter, svc: Service) -> None:
    """What the CLI's report, timings and roots commands print, as JSON."""
    reports = svc.reports

    @api.get("/reports/types")
    def report_types() -> list[dict[str, Any]]:
        """Every file under the roots by extension and detected kind."""
        return reports.types()

    @api.get("/reports/missing-tags")
    def report_missing(
        fields: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=0, le=10_000)] = 0,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Tracks missing critical tags (problems) or album artist or track number (warnings)."""
        return reports.missing_tags(svc.tag_fields(fields), limit=limit, offset=offset)

    @api.get("/reports/artwork")
    def report_artwork(
        min_size: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    ) -> list[dict[str, Any]]:
        """Albums with no front cover, a small one, or one that cannot be decoded."""
        return reports.artwork(svc.min_cover_size(min_size))

    @api.get("/reports/errors")
    def report_errors() -> list[dict[str, Any]]:
        """Files that could not be read, and why."""
        return reports.errors()

    @api.get("/timings")
    def scan_timings(
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    ) -> list[dict[str, Any]]:
        """The per-step times of recent scans, newest first."""
        return reports.timings(limit)

    @api.get("/roots")
    def roots() -> list[dict[str, Any]]:
        """The scanned roots with their file counts."""
        return svc.library.roots()
