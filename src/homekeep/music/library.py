"""Read access to the library for the API: artists, albums, groups, tracks, images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homekeep.core.db import Database
from homekeep.core.errors import NotFound

GROUPINGS = ("album_artist", "release_type", "compilation", "genre", "decade")
ALBUM_SORTS = {
    "added": "a.added_at IS NULL, a.added_at DESC, a.album_artist COLLATE NOCASE,"
    " a.title COLLATE NOCASE",
    "title": "a.title COLLATE NOCASE, a.year",
    "artist": "a.album_artist COLLATE NOCASE, a.year, a.title COLLATE NOCASE",
    "year": "a.year IS NULL, a.year, a.album_artist COLLATE NOCASE, a.title COLLATE NOCASE",
}
ALBUM_SELECT = (
    "SELECT a.id, a.title, a.album_artist, a.album_artist_id, a.year, a.date, a.genre,"
    " a.compilation, a.release_type, a.mb_album_id, a.mb_release_group_id, a.track_count,"
    " a.disc_count, a.duration, a.cover_hash, a.cover_source, r.path || '/' || a.dir AS folder,"
    " a.added_at,"
    " i.width AS cover_width, i.height AS cover_height FROM albums a"
    " JOIN roots r ON r.id = a.root_id LEFT JOIN images i ON i.hash = a.cover_hash"
)
_TRACK_ORDER = "COALESCE(t.disc, 1), COALESCE(t.track, 0), f.path"
# the first key is the one reversed by ``desc``; the rest keep albums in track order
TRACK_SORTS = {
    "artist": ("t.artist COLLATE NOCASE", f"t.album COLLATE NOCASE, {_TRACK_ORDER}"),
    "title": ("t.title COLLATE NOCASE", f"t.artist COLLATE NOCASE, {_TRACK_ORDER}"),
    "album": ("t.album COLLATE NOCASE", _TRACK_ORDER),
    "year": ("t.year", f"t.album COLLATE NOCASE, {_TRACK_ORDER}"),
    "duration": ("t.duration", _TRACK_ORDER),
    "format": ("f.detected", f"t.artist COLLATE NOCASE, t.album COLLATE NOCASE, {_TRACK_ORDER}"),
}
# the albums one of whose tracks has a genre (any value of a multi-valued tag)
IN_GENRE = (
    "a.id IN (SELECT t.album_id FROM track_genres g JOIN tracks t ON t.file_id = g.file_id"
    " WHERE g.genre = ? COLLATE NOCASE)"
)
_GROUPS = {
    "album_artist": "SELECT album_artist_id AS id, MIN(album_artist) AS name, COUNT(*) AS albums"
    " FROM albums GROUP BY album_artist_id ORDER BY name COLLATE NOCASE",
    "release_type": "SELECT COALESCE(release_type, 'unknown') AS id,"
    " COALESCE(release_type, 'unknown') AS name, COUNT(*) AS albums"
    " FROM albums GROUP BY 1 ORDER BY albums DESC, name",
    "compilation": "SELECT CASE compilation WHEN 1 THEN 'true' ELSE 'false' END AS id,"
    " CASE compilation WHEN 1 THEN 'Compilations' ELSE 'Albums' END AS name,"
    " COUNT(*) AS albums FROM albums GROUP BY compilation ORDER BY compilation DESC",
    "genre": "SELECT MIN(g.genre) AS id, MIN(g.genre) AS name, COUNT(DISTINCT t.album_id) AS albums"
    " FROM track_genres g JOIN tracks t ON t.file_id = g.file_id"
    " GROUP BY g.genre COLLATE NOCASE ORDER BY name COLLATE NOCASE",
    "decade": "SELECT COALESCE(CAST(year / 10 * 10 AS TEXT), 'unknown') AS id,"
    " COALESCE((year / 10 * 10) || 's', 'unknown') AS name, COUNT(*) AS albums"
    " FROM albums GROUP BY 1 ORDER BY year IS NULL, MIN(year)",
}
TRACK_SELECT = (
    "SELECT t.*, f.detected AS format, f.size, f.ext, r.path || '/' || f.path AS path,"
    " a.cover_hash FROM tracks t JOIN files f ON f.id = t.file_id"
    " JOIN roots r ON r.id = f.root_id LEFT JOIN albums a ON a.id = t.album_id"
)


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def album_dict(row: Any) -> dict[str, Any]:
    album = dict(row)
    album["compilation"] = bool(album["compilation"])
    album["folder"] = album["folder"].rstrip("/")
    return album


def track_dict(row: Any) -> dict[str, Any]:
    track = dict(row)
    track["id"] = track.pop("file_id")
    track["compilation"] = bool(track["compilation"])
    return track


class Library:
    """Queries the player needs, paginated where lists can be long."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _page(
        self,
        sql: str,
        params: list[Any],
        order: str,
        limit: int,
        offset: int,
        shape: Callable[[Any], dict[str, Any]] = dict,
    ) -> dict[str, Any]:
        """One page of a query's rows, shaped, with the count of all of them."""
        rows = self.db.query(f"{sql} ORDER BY {order} LIMIT ? OFFSET ?", [*params, limit, offset])
        total = self.db.query_one(f"SELECT COUNT(*) FROM ({sql})", params)  # noqa: S608
        items = [shape(r) for r in rows]
        return {"items": items, "total": int(total[0]) if total else 0, "limit": limit,
                "offset": offset}  # fmt: skip

    def artists(
        self, *, q: str | None, limit: int, offset: int, album_artists: bool = False
    ) -> dict[str, Any]:
        clauses: list[str] = []
        params: list[Any] = []
        if q:
            clauses.append("name LIKE ? ESCAPE '\\'")
            params.append(_like(q))
        if album_artists:
            clauses.append("album_count > 0")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM artists{where}"  # noqa: S608
        return self._page(sql, params, "name COLLATE NOCASE", limit, offset)

    def artist(self, artist_id: str) -> dict[str, Any]:
        row = self.db.query_one("SELECT * FROM artists WHERE id = ?", (artist_id,))
        if row is None:
            raise NotFound(f"no artist with id {artist_id!r}")
        albums = self.db.query(
            f"{ALBUM_SELECT} WHERE a.album_artist_id = ? OR a.id IN"  # noqa: S608
            " (SELECT t.album_id FROM track_artists ta JOIN tracks t ON t.file_id = ta.file_id"
            " WHERE ta.artist_id = ?)"
            f" ORDER BY {ALBUM_SORTS['year']}",
            (artist_id, artist_id),
        )
        shaped = [
            {**album_dict(a), "appears_on": a["album_artist_id"] != artist_id} for a in albums
        ]
        return {**dict(row), "albums": shaped}

    def albums(
        self,
        *,
        q: str | None,
        artist_id: str | None,
        release_type: str | None,
        compilation: bool | None,
        sort: str,
        limit: int,
        offset: int,
        genre: str | None = None,
        decade: int | None = None,
    ) -> dict[str, Any]:
        """Albums filtered by text, album artist, group (release type, compilation, genre,
        decade: -1 for no year), sorted, paginated."""
        clauses: list[str] = []
        params: list[Any] = []
        if q:
            clauses.append("(a.title LIKE ? ESCAPE '\\' OR a.album_artist LIKE ? ESCAPE '\\')")
            params += [_like(q), _like(q)]
        if artist_id:
            clauses.append("a.album_artist_id = ?")
            params.append(artist_id)
        if release_type:
            clauses.append("COALESCE(a.release_type, '') = ?")
            params.append("" if release_type == "unknown" else release_type)
        if compilation is not None:
            clauses.append("a.compilation = ?")
            params.append(int(compilation))
        if genre:
            clauses.append(IN_GENRE)
            params.append(genre)
        if decade is not None and decade < 0:
            clauses.append("a.year IS NULL")
        elif decade is not None:
            clauses.append("a.year BETWEEN ? AND ?")
            params += [decade, decade + 9]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._page(f"{ALBUM_SELECT}{where}", params, ALBUM_SORTS[sort], limit, offset,
                          album_dict)  # fmt: skip

    def album(self, album_id: str) -> dict[str, Any]:
        row = self.db.query_one(f"{ALBUM_SELECT} WHERE a.id = ?", (album_id,))
        if row is None:
            raise NotFound(f"no album with id {album_id!r}")
        tracks = self.db.query(
            f"{TRACK_SELECT} WHERE t.album_id = ?"
            " ORDER BY COALESCE(t.disc, 1), COALESCE(t.track, 0), f.path",
            (album_id,),
        )
        return {**album_dict(row), "tracks": self.with_lists([track_dict(t) for t in tracks])}

    def groups(self, by: str) -> list[dict[str, Any]]:
        """Albums grouped by album artist, release type, compilation, genre or decade."""
        return [{"by": by, **dict(row)} for row in self.db.query(_GROUPS[by])]

    def tracks(
        self,
        *,
        q: str | None,
        album_id: str | None,
        artist_id: str | None,
        limit: int,
        offset: int,
        genre: str | None = None,
        sort: str = "artist",
        desc: bool = False,
    ) -> dict[str, Any]:
        clauses: list[str] = []
        params: list[Any] = []
        if genre:
            clauses.append(
                "t.file_id IN (SELECT file_id FROM track_genres WHERE genre = ? COLLATE NOCASE)"
            )
            params.append(genre)
        if q:
            clauses.append(
                "(t.title LIKE ? ESCAPE '\\' OR t.artist LIKE ? ESCAPE '\\'"
                " OR t.album LIKE ? ESCAPE '\\')"
            )
            params += [_like(q)] * 3
        if album_id:
            clauses.append("t.album_id = ?")
            params.append(album_id)
        if artist_id:  # any of the track's artists, not only the main one
            clauses.append("t.file_id IN (SELECT file_id FROM track_artists WHERE artist_id = ?)")
            params.append(artist_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        first, rest = TRACK_SORTS[sort]
        order = f"{first} {'DESC' if desc else 'ASC'}, {rest}"
        page = self._page(f"{TRACK_SELECT}{where}", params, order, limit, offset, track_dict)
        self.with_lists(page["items"])
        return page

    def track(self, track_id: int) -> dict[str, Any]:
        row = self.db.query_one(f"{TRACK_SELECT} WHERE t.file_id = ?", (track_id,))
        if row is None:
            raise NotFound(f"no track with id {track_id}")
        pictures = self.db.query(
            "SELECT p.type, p.mime, p.description, p.hash, p.size, i.width, i.height, i.error"
            " FROM pictures p LEFT JOIN images i ON i.hash = p.hash WHERE p.file_id = ?"
            " ORDER BY p.position",
            (track_id,),
        )
        return {**self.with_lists([track_dict(row)])[0], "pictures": [dict(p) for p in pictures]}

    def tracks_by_ids(self, ids: list[int]) -> list[dict[str, Any]]:
        """The tracks of ``ids`` in that order (a playlist, a queue); unknown ids are skipped."""
        found: dict[int, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.db.query(f"{TRACK_SELECT} WHERE t.file_id IN ({marks})", chunk)
            found.update((r["file_id"], track_dict(r)) for r in rows)
        self.with_lists(list(found.values()))
        return [found[i] for i in ids if i in found]

    def with_lists(self, tracks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add every artist ({id, name}) and every genre of each track, in tag order."""
        by_id = {t["id"]: t for t in tracks}
        for t in tracks:
            t["artists"], t["genres"] = [], []
        for start in range(0, len(tracks), 500):
            ids = list(by_id)[start : start + 500]
            marks = ", ".join("?" * len(ids))
            for row in self.db.query(
                f"SELECT file_id, artist_id, name FROM track_artists"  # noqa: S608
                f" WHERE file_id IN ({marks}) ORDER BY file_id, position",
                ids,
            ):
                by_id[row["file_id"]]["artists"].append(
                    {"id": row["artist_id"], "name": row["name"]}
                )
            for row in self.db.query(
                f"SELECT file_id, genre FROM track_genres"  # noqa: S608
                f" WHERE file_id IN ({marks}) ORDER BY file_id, position",
                ids,
            ):
                by_id[row["file_id"]]["genres"].append(row["genre"])
        return tracks

    def genres(self, *, q: str | None, limit: int, offset: int) -> dict[str, Any]:
        """Every genre with its track count (a track counts for each of its genres)."""
        where, params = "", []
        if q:
            where, params = " WHERE genre LIKE ? ESCAPE '\\'", [_like(q)]
        sql = (
            "SELECT MIN(genre) AS name, COUNT(DISTINCT file_id) AS tracks"  # noqa: S608
            f" FROM track_genres{where} GROUP BY genre COLLATE NOCASE"
        )
        return self._page(sql, params, "name COLLATE NOCASE", limit, offset)

    def image(self, digest: str) -> dict[str, Any]:
        row = self.db.query_one("SELECT * FROM images WHERE hash = ?", (digest,))
        if row is None:
            raise NotFound(f"no image {digest!r}")
        return dict(row)

    def totals(self) -> dict[str, Any]:
        """Tracks, albums and when the last scan finished: the landing page's summary."""
        row = self.db.query_one(
            "SELECT (SELECT COUNT(*) FROM tracks) AS tracks,"
            " (SELECT COUNT(*) FROM albums) AS albums,"
            " (SELECT MAX(finished_at) FROM scans) AS scanned",
        )
        assert row is not None
        return {"tracks": row["tracks"], "albums": row["albums"], "last scan": row["scanned"]}

    def roots(self) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT r.id, r.path, r.added_at, r.scanned_at, COUNT(f.id) AS files,"
            " COALESCE(SUM(f.size), 0) AS bytes FROM roots r"
            " LEFT JOIN files f ON f.root_id = r.id GROUP BY r.id ORDER BY r.path"
        )
        return [dict(r) for r in rows]
