"""The music API under /api/music: what the player reads, and the reports."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse

from homekeep.core.area import AreaContext, Summary, WebParts
from homekeep.core.auth import Caller, require_scope
from homekeep.core.errors import NotFound
from homekeep.music import reports
from homekeep.music.config import MusicConfig
from homekeep.music.images import ImageStore
from homekeep.music.library import Library
from homekeep.music.schema import MIGRATIONS

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")]
# SQLite integers are 64-bit: a bigger id would be a 500 (OverflowError), not a 404
TrackId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1, description="A track id.")]
Search = Annotated[str | None, Query(max_length=200, description="Substring to look for.")]


def build(ctx: AreaContext) -> WebParts:
    """Return the routers of the music area."""
    config = ctx.config(MusicConfig)
    db = ctx.database(MIGRATIONS)
    library = Library(db)
    store = ImageStore(ctx.dir / "images")
    api = APIRouter(dependencies=[Depends(require_scope("music"))])

    @api.get("/artists")
    async def artists(q: Search = None, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
        """Artists (track artists and album artists), by name."""
        return await db.run(library.artists, q=q, limit=limit, offset=offset)

    @api.get("/artists/{artist_id}")
    async def artist(artist_id: str) -> dict[str, Any]:
        """One artist with their albums, oldest first."""
        return await db.run(library.artist, artist_id)

    @api.get("/albums")
    async def albums(
        q: Search = None,
        artist_id: Annotated[str | None, Query(max_length=64)] = None,
        release_type: Annotated[str | None, Query(max_length=64)] = None,
        compilation: bool | None = None,
        sort: Literal["title", "artist", "year"] = "artist",
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Albums, filtered by album artist, release type or compilation; paginated."""
        return await db.run(
            library.albums,
            q=q,
            artist_id=artist_id,
            release_type=release_type,
            compilation=compilation,
            sort=sort,
            limit=limit,
            offset=offset,
        )

    @api.get("/albums/{album_id}")
    async def album(album_id: str) -> dict[str, Any]:
        """One album with its tracks in disc and track order."""
        return await db.run(library.album, album_id)

    @api.get("/albums/{album_id}/cover")
    async def album_cover(album_id: str, size: Literal["full", "thumb"] = "thumb") -> FileResponse:
        """The album's front cover: the original, or the thumbnail."""
        found = await db.run(library.album, album_id)
        if not found["cover_hash"]:
            raise NotFound(f"album {album_id!r} has no front cover")
        return await _image(found["cover_hash"], size)

    @api.get("/album-groups")
    async def album_groups(
        by: Literal["album_artist", "release_type", "compilation"] = "album_artist",
    ) -> list[dict[str, Any]]:
        """Album groups: by album artist, by release type, or compilations apart."""
        return await db.run(library.groups, by)

    @api.get("/tracks")
    async def tracks(
        q: Search = None,
        album_id: Annotated[str | None, Query(max_length=64)] = None,
        artist_id: Annotated[str | None, Query(max_length=64)] = None,
        genre: Annotated[str | None, Query(max_length=200)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Tracks, filtered by album, by any of their artists or genres; paginated."""
        return await db.run(
            library.tracks,
            q=q,
            album_id=album_id,
            artist_id=artist_id,
            genre=genre,
            limit=limit,
            offset=offset,
        )

    @api.get("/genres")
    async def genres(q: Search = None, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
        """Genres with their track counts (every value of multi-valued genre tags)."""
        return await db.run(library.genres, q=q, limit=limit, offset=offset)

    @api.get("/tracks/{track_id}")
    async def track(track_id: TrackId) -> dict[str, Any]:
        """One track with every embedded picture (front, back, artist...)."""
        return await db.run(library.track, track_id)

    async def _image(digest: str, size: str) -> FileResponse:
        if not _HASH_RE.match(digest):
            raise NotFound(f"no image {digest!r}")
        info = await db.run(library.image, digest)
        if size == "thumb":
            path = store.thumb_path(digest)
            if info["error"] or not path.is_file():
                raise NotFound(f"image {digest} has no thumbnail: {info['error'] or 'not made'}")
            return FileResponse(path, media_type="image/jpeg", headers=_IMMUTABLE)
        path = store.full_path(digest)
        if not path.is_file():
            raise NotFound(f"image {digest} is missing from the store; rescan with --full")
        return FileResponse(path, media_type=info["mime"], headers=_IMMUTABLE)

    @api.get("/images/{digest}")
    async def image(digest: str, size: Literal["full", "thumb"] = "full") -> FileResponse:
        """An image by content hash: the original bytes, or the JPEG thumbnail."""
        return await _image(digest, size)

    @api.get("/reports/types")
    async def report_types() -> list[dict[str, Any]]:
        """Every file under the roots by extension and detected kind."""
        return await db.run(reports.types, db)

    @api.get("/reports/missing-tags")
    async def report_missing(
        fields: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=0, le=10_000)] = 0,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Tracks missing critical tags (problems) or album artist or track number (warnings)."""
        wanted = reports.parse_fields(fields, config.critical_tags)
        return await db.run(reports.missing_tags, db, wanted, limit=limit, offset=offset)

    @api.get("/reports/artwork")
    async def report_artwork(
        min_size: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    ) -> list[dict[str, Any]]:
        """Albums with no front cover, a small one, or one that cannot be decoded."""
        size = config.min_cover_size if min_size is None else min_size
        return await db.run(reports.artwork, db, size)

    @api.get("/reports/errors")
    async def report_errors() -> list[dict[str, Any]]:
        """Files that could not be read, and why."""
        return await db.run(reports.errors, db)

    @api.get("/timings")
    async def scan_timings(
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    ) -> list[dict[str, Any]]:
        """The per-step times of recent scans, newest first."""
        return await db.run(reports.timings, db, limit)

    @api.get("/roots")
    async def roots() -> list[dict[str, Any]]:
        """The scanned roots with their file counts."""
        return await db.run(library.roots)

    async def summary(caller: Caller) -> Summary:
        counts = await db.run(
            db.query_one,
            "SELECT (SELECT COUNT(*) FROM tracks) AS tracks,"
            " (SELECT COUNT(*) FROM albums) AS albums,"
            " (SELECT MAX(finished_at) FROM scans) AS scanned",
        )
        assert counts is not None
        return {
            "tracks": counts["tracks"],
            "albums": counts["albums"],
            "last scan": counts["scanned"],
        }

    async def close() -> None:
        db.close()

    return WebParts(api=api, shutdown=[close], summary=summary)
