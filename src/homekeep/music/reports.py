"""The library reports: file types, missing tags, artwork problems, read errors, timings."""

from __future__ import annotations

import json
from typing import Any

from homekeep.core.db import Database
from homekeep.core.errors import UsageError
from homekeep.music.config import TAG_FIELDS

WARN_FIELDS = ("album_artist", "track")


def parse_fields(text: str | None, default: list[str]) -> list[str]:
    """Return the tag fields named in a comma-separated list, checked."""
    fields = [f.strip() for f in text.split(",") if f.strip()] if text else list(default)
    for name in fields:
        if name not in TAG_FIELDS:
            raise UsageError(f"unknown tag field {name!r}; choose from: {', '.join(TAG_FIELDS)}")
    if not fields:
        raise UsageError(f"give at least one tag field, from: {', '.join(TAG_FIELDS)}")
    return fields


class Reports:
    """The reports' queries: the CLI prints them, the API answers them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def types(self) -> list[dict[str, Any]]:
        """Every file under the roots by extension and detected kind, with count and size."""
        rows = self.db.query(
            "SELECT ext, kind, COALESCE(detected, CASE WHEN error IS NOT NULL THEN 'unreadable'"
            " END) AS detected, COUNT(*) AS files, SUM(size) AS bytes FROM files"
            " GROUP BY ext, kind, detected ORDER BY kind = 'audio' DESC, files DESC, ext"
        )
        return [dict(row) for row in rows]

    def missing_tags(
        self, fields: list[str], *, limit: int = 0, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Tracks missing a critical tag (problems), or album artist or track number (warnings)."""
        checked = list(dict.fromkeys([*fields, *WARN_FIELDS]))
        blank = " OR ".join(f"t.{f} IS NULL OR t.{f} = ''" for f in checked)
        page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit else ""
        rows = self.db.query(
            f"SELECT t.file_id, r.path AS root, f.path, t.{', t.'.join(checked)}"  # noqa: S608
            " FROM tracks t JOIN files f ON f.id = t.file_id JOIN roots r ON r.id = f.root_id"
            f" WHERE {blank} ORDER BY r.path, f.path{page}"
        )
        out = []
        for row in rows:
            missing = [f for f in fields if row[f] in (None, "")]
            warnings = [f for f in WARN_FIELDS if f not in fields and row[f] in (None, "")]
            out.append(
                {
                    "track_id": row["file_id"],
                    "path": f"{row['root']}/{row['path']}",
                    "missing": missing,
                    "warnings": warnings,
                    "level": "problem" if missing else "warning",
                }
            )
        out.sort(key=lambda r: (r["level"] != "problem", r["path"]))
        return out

    def artwork(self, min_size: int) -> list[dict[str, Any]]:
        """Albums with no front cover, a cover that cannot be decoded, or one too small."""
        rows = self.db.query(
            "SELECT a.id, a.title, a.album_artist, a.dir, r.path AS root, a.cover_hash,"
            " a.cover_source, i.width, i.height, i.error FROM albums a"
            " JOIN roots r ON r.id = a.root_id LEFT JOIN images i ON i.hash = a.cover_hash"
            " WHERE a.cover_hash IS NULL OR i.error IS NOT NULL OR i.hash IS NULL"
            " OR MIN(i.width, i.height) < ? ORDER BY a.album_artist, a.title",
            (min_size,),
        )
        out = []
        for row in rows:
            if row["cover_hash"] is None:
                problem, reason = "missing", "no front cover (embedded or in the folder)"
            elif row["error"] is not None or row["width"] is None:
                problem, reason = "unreadable", row["error"] or "cover not decoded yet"
            else:
                problem = "small"
                reason = f"cover is {row['width']}x{row['height']}, under {min_size} px"
            out.append(
                {
                    "album_id": row["id"],
                    "album": row["title"],
                    "album_artist": row["album_artist"],
                    "folder": f"{row['root']}/{row['dir']}".rstrip("/"),
                    "problem": problem,
                    "reason": reason,
                    "cover_source": row["cover_source"],
                    "width": row["width"],
                    "height": row["height"],
                }
            )
        return out

    def errors(self) -> list[dict[str, Any]]:
        """Files that could not be read (errors) or are not what they claim (warnings)."""
        rows = self.db.query(
            "SELECT f.id, r.path AS root, f.path, f.size, f.error, f.warning FROM files f"
            " JOIN roots r ON r.id = f.root_id WHERE f.error IS NOT NULL OR f.warning IS NOT NULL"
            " ORDER BY f.error IS NULL, r.path, f.path"
        )
        return [
            {
                "file_id": row["id"],
                "path": f"{row['root']}/{row['path']}",
                "size": row["size"],
                "level": "error" if row["error"] else "warning",
                "message": row["error"] or row["warning"],
            }
            for row in rows
        ]

    def timings(self, limit: int = 10) -> list[dict[str, Any]]:
        """The most recent scans, newest first, with their counts and per-step times."""
        rows = self.db.query("SELECT * FROM scans ORDER BY id DESC LIMIT ?", (limit,))
        return [
            {
                "scan_id": row["id"],
                "started_at": row["started_at"],
                "finished_at": row["finished_at"],
                "roots": json.loads(row["roots"]),
                "full": bool(row["full"]),
                "workers": row["workers"],
                "counts": json.loads(row["counts"]),
                "timings": json.loads(row["timings"]),
            }
            for row in rows
        ]
