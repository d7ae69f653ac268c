"""The player's routes under /api/music: audio streams and playlists."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from homekeep.core.auth import Caller, require_scope
from homekeep.core.errors import PayloadTooLarge
from homekeep.core.limits import Int64
from homekeep.music import playlists as m3u
from homekeep.music.service import Service
from homekeep.music.streaming import Transcoder, file_response, plan
from homekeep.music.userlists import UserLists

# SQLite integers are 64-bit: a bigger id would be a 500 (OverflowError), not a 404
TrackId = Annotated[Int64, Path(description="A track id.")]
PlaylistId = Annotated[str, Path(max_length=200, description="The playlist's file name.")]
Ids = Annotated[list[Int64], Field(max_length=m3u.MAX_ENTRIES)]


class NewPlaylist(BaseModel):
    name: str = Field(max_length=m3u.MAX_NAME * 4)
    track_ids: Ids = []


class Rename(BaseModel):
    name: str = Field(max_length=m3u.MAX_NAME * 4)


class Additions(BaseModel):
    track_ids: Ids
    position: int | None = Field(default=None, ge=0, le=m3u.MAX_ENTRIES)


class Positions(BaseModel):
    positions: list[Annotated[int, Field(ge=0, le=m3u.MAX_ENTRIES)]] = Field(
        max_length=m3u.MAX_ENTRIES
    )


class Order(BaseModel):
    order: list[Annotated[int, Field(ge=0, le=m3u.MAX_ENTRIES)]] = Field(max_length=m3u.MAX_ENTRIES)


def player_routes(api: APIRouter, svc: Service, transcoder: Transcoder) -> None:
    """Add the stream and playlist routes to the music API.

    Each user has playlists of their own (and sees the shared ones); a token without a
    user, the CLI's, works on the shared ones.
    """
    who = Depends(require_scope("music"))

    def mine(caller: Caller = who) -> UserLists:
        return svc.playlists.of(caller.user.name if caller.user else None)

    # a default value: an annotation naming this local would not resolve (they are strings)
    lists_of = Depends(mine)

    @api.get("/tracks/{track_id}/stream", response_model=None)
    def stream(
        request: Request,
        track_id: TrackId,
        format: Literal["raw", "opus", "mp3", "flac"] = "raw",
        bitrate: Annotated[int | None, Query(ge=0, le=10_000, description="kbit/s")] = None,
        offset: Annotated[float, Query(ge=0, le=86_400, description="Start, in s")] = 0,
    ) -> Response:
        """The track as it is (HTTP Range for seeking), or transcoded from ``offset`` seconds."""
        path, fmt, kbps = svc.track_file(track_id)
        chosen = plan(fmt, format, bitrate, offset, kbps)
        if chosen.target is None:
            return file_response(path, fmt, request.headers.get("range"))
        return transcoder.response(path, chosen)

    @api.get("/playlists")
    def playlists(lists: UserLists = lists_of) -> list[dict[str, Any]]:
        """The caller's playlists and the shared ones, read from disk."""
        return lists.summaries()

    @api.post("/playlists", status_code=201)
    def create(body: NewPlaylist, lists: UserLists = lists_of) -> dict[str, Any]:
        """A new playlist, empty or with tracks."""
        return lists.create(body.name, body.track_ids).to_json()

    @api.post("/playlists/import", status_code=201)
    async def import_m3u(
        request: Request,
        name: Annotated[str, Query(max_length=m3u.MAX_NAME * 4)],
        lists: UserLists = lists_of,
    ) -> dict[str, Any]:
        """A playlist from an .m3u/.m3u8 file sent as the body; the report lists misses."""
        data = await _body(request, m3u.MAX_BYTES)
        return await run_in_threadpool(lists.import_m3u, name, data)

    @api.get("/playlists/{playlist_id}")
    def playlist(playlist_id: PlaylistId, lists: UserLists = lists_of) -> dict[str, Any]:
        """A playlist's entries: each a track, or the reason it is not one."""
        return lists.read(playlist_id).to_json()

    @api.get("/playlists/{playlist_id}/m3u8", response_model=None)
    def download(playlist_id: PlaylistId, lists: UserLists = lists_of) -> Response:
        """The playlist file as it is on disk."""
        found = lists.read(playlist_id)
        name = quote(found.file.name, safe="")
        return Response(
            found.file.read_bytes(),
            media_type="audio/x-mpegurl",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
        )

    @api.patch("/playlists/{playlist_id}")
    def rename(
        playlist_id: PlaylistId, body: Rename, lists: UserLists = lists_of
    ) -> dict[str, Any]:
        """Rename a playlist (its file)."""
        return lists.rename(playlist_id, body.name).to_json()

    @api.post("/playlists/{playlist_id}/tracks")
    def add(
        playlist_id: PlaylistId, body: Additions, lists: UserLists = lists_of
    ) -> dict[str, Any]:
        """Insert tracks at a position (default: the end)."""
        return lists.add(playlist_id, body.track_ids, body.position).to_json()

    @api.post("/playlists/{playlist_id}/remove")
    def remove(
        playlist_id: PlaylistId, body: Positions, lists: UserLists = lists_of
    ) -> dict[str, Any]:
        """Remove the entries at the given positions."""
        return lists.remove(playlist_id, body.positions).to_json()

    @api.put("/playlists/{playlist_id}/order")
    def reorder(
        playlist_id: PlaylistId, body: Order, lists: UserLists = lists_of
    ) -> dict[str, Any]:
        """Reorder the entries: ``order`` lists the current positions in their new order."""
        return lists.reorder(playlist_id, body.order).to_json()

    @api.delete("/playlists/{playlist_id}", status_code=204, response_model=None)
    def delete(playlist_id: PlaylistId, lists: UserLists = lists_of) -> Response:
        """Delete a playlist file."""
        lists.delete(playlist_id)
        return Response(status_code=204)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes before more is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
