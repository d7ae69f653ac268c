"""The web player's own routes under /api/music: each user's play queue and plays.

The Subsonic API keeps the same rows (``userdata.py``): a queue saved in the browser is
the one a phone app resumes, and the other way round.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from homekeep.core.auth import Caller, require_scope
from homekeep.core.db import utcnow
from homekeep.core.errors import Forbidden, InvalidInput, NotFound
from homekeep.core.limits import Int64
from homekeep.music.service import Service
from homekeep.music.userdata import MAX_QUEUE, UserData

TrackIdField = Int64
MAX_POSITION_MS = 24 * 3600 * 1000


class Queue(BaseModel):
    track_ids: list[TrackIdField] = Field(max_length=MAX_QUEUE)
    current: TrackIdField | None = None
    position_ms: int = Field(default=0, ge=0, le=MAX_POSITION_MS)


class TrackList(BaseModel):
    track_ids: list[TrackIdField] = Field(max_length=MAX_QUEUE)


class Play(BaseModel):
    track_id: TrackIdField


def _user_id(caller: Caller) -> int:
    """The caller's user id: a queue and plays belong to a person, not to a CLI token."""
    if caller.user is None:
        raise Forbidden("the play queue belongs to a user: log in, or use a personal token")
    return caller.user.id


def queue_routes(api: APIRouter, svc: Service) -> None:
    """Add the play queue, plays, recently played and track-list routes to the music API."""
    data = UserData(svc.db)
    library = svc.library
    who = Depends(require_scope("music"))

    @api.get("/queue")
    def queue(caller: Caller = who) -> dict[str, Any]:
        """The caller's saved queue with its tracks (tracks gone since are left out)."""
        saved = data.queue(_user_id(caller)) or {"track_ids": [], "current": None,
                                                 "position_ms": 0}  # fmt: skip
        tracks = library.tracks_by_ids(saved["track_ids"])
        return {"track_ids": [t["id"] for t in tracks], "current": saved["current"],
                "position_ms": saved["position_ms"], "tracks": tracks}  # fmt: skip

    @api.put("/queue")
    def save_queue(body: Queue, caller: Caller = who) -> dict[str, Any]:
        """Keep the caller's queue, the track playing and where in it (empty: cleared)."""
        if body.current is not None and body.current not in body.track_ids:
            raise InvalidInput("current must be one of track_ids")
        data.save_queue(_user_id(caller), body.track_ids, body.current, body.position_ms,
                        "web")  # fmt: skip
        return {"track_ids": body.track_ids, "current": body.current,
                "position_ms": body.position_ms}  # fmt: skip

    @api.post("/track-list")
    def track_list(body: TrackList) -> dict[str, Any]:
        """The tracks of ``track_ids`` in that order (a playlist's); unknown ids are left out."""
        return {"items": library.tracks_by_ids(body.track_ids)}

    @api.post("/plays")
    def played(body: Play, caller: Caller = who) -> dict[str, Any]:
        """Count a play of a track (the player sends it once past half the track)."""
        user = _user_id(caller)
        if not library.tracks_by_ids([body.track_id]):
            raise NotFound(f"no track with id {body.track_id}")
        data.played(user, [body.track_id], [utcnow()])
        count, last = data.plays(user, [body.track_id])[body.track_id]
        return {"track_id": body.track_id, "count": count, "last_played": last}

    @api.get("/recent")
    def recent(
        caller: Caller = who,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> dict[str, Any]:
        """The caller's played tracks, last played first, with their play counts."""
        plays = data.recently_played(_user_id(caller), limit, offset)
        tracks = {t["id"]: t for t in library.tracks_by_ids([p["file_id"] for p in plays])}
        items = [
            {**tracks[p["file_id"]], "play_count": p["count"], "last_played": p["last_played"]}
            for p in plays
            if p["file_id"] in tracks
        ]
        return {"items": items, "limit": limit, "offset": offset}
