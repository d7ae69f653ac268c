"""Where images live: one SQLite table for the records, one folder for the files.

A file is written to an exclusive temp name in ``tmp/`` (beside the served ``files/``, never
inside it), linked to ``files/<id>.<ext>`` inside the transaction that inserts its row, and
the temp name removed: a failed upload leaves neither a file nor a row. A process killed
mid-upload can leave a temp file (named with its pid, removed by the next sweep once that
process is gone) or, between the link and the commit, a file without a row (removed by
``tidy`` at the next start). The id's uniqueness is the table's PRIMARY KEY; a taken id is
retried, and the length new ids grow to is kept in the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from homekeep.core.db import Database, utcnow
from homekeep.core.errors import Unavailable
from homekeep.core.processes import pid_alive
from homekeep.images.ids import IdGenerator

MIGRATIONS = (
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY NOT NULL,
        ext TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        file_name TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        owner TEXT,
        delete_hash TEXT NOT NULL,
        expires_at TEXT
    );
    CREATE INDEX images_owner ON images(owner, created_at);
    CREATE INDEX images_sha256 ON images(sha256);
    CREATE INDEX images_expiry ON images(expires_at) WHERE expires_at IS NOT NULL;
    """,
    """
    CREATE TABLE state (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
    """,
)
MAX_ATTEMPTS = 64
STALE_TEMP_SECONDS = 3600  # an upload's temp file older than this was left by a crash
_STARTED = time.time()
_TEMP_NAME = re.compile(r"^\.upload-(\d+)-.*\.part$")


@dataclass(frozen=True)
class ImageRecord:
    """One hosted image, as stored (never the delete token itself)."""

    id: str
    ext: str
    mime_type: str
    file_name: str
    size: int
    sha256: str
    width: int
    height: int
    created_at: str
    owner: str | None
    expires_at: str | None

    @property
    def file(self) -> str:
        return f"{self.id}.{self.ext}"

    def expired(self, now: str | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("owner")
        return data


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def expiry(seconds: int | None) -> str | None:
    """Return the ISO time ``seconds`` from now, rounded up to a whole second, or None."""
    if not seconds:
        return None
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    if when.microsecond:
        when += timedelta(microseconds=1_000_000 - when.microsecond)
    return when.isoformat(timespec="seconds")


class ImageStore:
    """The images table and the files folder of one data directory.

    Threads: shared by every worker thread. ``db`` hands each thread its own SQLite
    connection; ``ids`` guards its length with a lock; files are written to a temp name
    of their own and linked under the write lock, so two uploads never share a file.
    """

    def __init__(self, db: Database, folder: Path, ids: IdGenerator) -> None:
        self.db = db
        self.files = folder
        self.files.mkdir(parents=True, exist_ok=True)
        self.temp = folder.parent / "tmp"
        self.temp.mkdir(exist_ok=True)
        self.ids = ids
        row = db.query_one("SELECT value FROM state WHERE name = 'id_length'")
        if row is not None:
            ids.at_least(int(row["value"]))

    def path(self, record: ImageRecord) -> Path:
        return self.files / record.file

    def thumb_path(self, image_id: str) -> Path:
        return self.files.parent / "thumbs" / f"{image_id}.webp"

    def add(
        self,
        data: bytes,
        *,
        ext: str,
        mime_type: str,
        file_name: str,
        width: int,
        height: int,
        owner: str | None,
        expires_at: str | None,
    ) -> tuple[ImageRecord, str]:
        """Store an image and return its record and its delete token (shown once)."""
        token = secrets.token_urlsafe(24)
        fd, tmp_name = tempfile.mkstemp(
            dir=self.temp, prefix=f".upload-{os.getpid()}-", suffix=".part"
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.chmod(0o644)
            return self._insert(
                tmp,
                ext=ext,
                mime_type=mime_type,
                file_name=file_name,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                width=width,
                height=height,
                owner=owner,
                expires_at=expires_at,
                delete_hash=_hash(token),
            ), token
        finally:
            tmp.unlink(missing_ok=True)

    def _insert(self, tmp: Path, **fields: Any) -> ImageRecord:
        streak = 0
        for _ in range(MAX_ATTEMPTS):
            length = self.ids.length
            image_id = self.ids.new()
            record = ImageRecord(
                id=image_id,
                created_at=utcnow(),
                **{k: v for k, v in fields.items() if k != "delete_hash"},
            )
            final = self.path(record)
            linked = False
            try:
                with self.db.transaction() as conn:
                    conn.execute(
                        "INSERT INTO images (id, ext, mime_type, file_name, size, sha256, width,"
                        " height, created_at, owner, delete_hash, expires_at) VALUES"
                        " (:id, :ext, :mime_type, :file_name, :size, :sha256, :width, :height,"
                        " :created_at, :owner, :delete_hash, :expires_at)",
                        {**asdict(record), "delete_hash": fields["delete_hash"]},
                    )
                    os.link(tmp, final)
                    linked = True
            except (sqlite3.IntegrityError, FileExistsError):
                streak += 1
                if self.ids.collided(streak, length):
                    self._keep_id_length(self.ids.length)
                continue
            except BaseException:
                if linked:
                    final.unlink(missing_ok=True)
                raise
            return record
        raise Unavailable(f"no free image id after {MAX_ATTEMPTS} tries; raise [images] id_length")

    def _keep_id_length(self, length: int) -> None:
        """Store the grown id length, so a restart goes on with it (never shrinks it)."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO state (name, value) VALUES ('id_length', ?) ON CONFLICT (name)"
                " DO UPDATE SET value = max(value, excluded.value)",
                (length,),
            )

    def get(self, image_id: str) -> ImageRecord | None:
        """Return the record of ``image_id``, expired or not, or None."""
        row = self.db.query_one("SELECT * FROM images WHERE id = ?", (image_id,))
        return _record(row) if row is not None else None

    def duplicate(self, owner: str | None, sha256: str) -> ImageRecord | None:
        """Return the owner's live image with this content, if any."""
        row = self.db.query_one(
            "SELECT * FROM images WHERE sha256 = ? AND owner IS ?"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at LIMIT 1",
            (sha256, owner, utcnow()),
        )
        return _record(row) if row is not None else None

    def page(
        self, owner: str | None, *, limit: int, offset: int, everyone: bool = False
    ) -> tuple[list[ImageRecord], int]:
        """Return one page of images, newest first, and the total count."""
        where, params = ("", ()) if everyone else ("WHERE owner IS ?", (owner,))
        rows = self.db.query(
            f"SELECT * FROM images {where} ORDER BY created_at DESC, rowid DESC"  # noqa: S608
            " LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        total = self.db.query_one(f"SELECT COUNT(*) AS n FROM images {where}", params)  # noqa: S608
        return [_record(r) for r in rows], int(total["n"]) if total else 0

    def check_delete_token(self, image_id: str, token: str) -> bool:
        """Return True if ``token`` is the image's delete token (constant-time compare)."""
        row = self.db.query_one("SELECT delete_hash FROM images WHERE id = ?", (image_id,))
        stored = row["delete_hash"] if row is not None else _hash("no such image")
        return hmac.compare_digest(stored, _hash(token)) and row is not None

    def delete(self, image_id: str) -> bool:
        """Remove an image's row and file; return False if there was none."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
            self.path(_record(row)).unlink(missing_ok=True)
            self.thumb_path(image_id).unlink(missing_ok=True)
        return True

    def sweep(self, now: str | None = None) -> list[str]:
        """Delete every expired image, and temp files a crash left; return the ids deleted."""
        self._sweep_temp()
        rows = self.db.query(
            "SELECT id FROM images WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (now or utcnow(),),
        )
        return [r["id"] for r in rows if self.delete(r["id"])]

    def _sweep_temp(self) -> None:
        """Remove temp files of uploads whose process is gone (or that are very old)."""
        for tmp in self.temp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if _left_behind(tmp):
                    tmp.unlink()

    def tidy(self) -> list[str]:
        """At start: remove files and thumbnails that have no row; return their names.

        Such a file is left when a process dies between linking it and committing its row.
        Each is removed holding the write lock, so no upload is between the two steps.
        """
        known = {f"{r['id']}.{r['ext']}" for r in self.db.query("SELECT id, ext FROM images")}
        ids = {name.partition(".")[0] for name in known}
        thumbs = self.files.parent / "thumbs"
        strays = [p for p in self.files.iterdir() if p.name not in known]
        if thumbs.is_dir():
            strays += [p for p in thumbs.iterdir() if p.name.partition(".")[0] not in ids]
        removed = []
        for path in strays:
            image_id = path.name.partition(".")[0]
            with self.db.transaction() as conn:
                row = conn.execute("SELECT ext FROM images WHERE id = ?", (image_id,)).fetchone()
                if row is None or (path.parent == self.files and path.suffix != f".{row['ext']}"):
                    path.unlink(missing_ok=True)
                    removed.append(path.name)
        return removed


def _left_behind(tmp: Path) -> bool:
    """Return True if no running upload can own this temp file."""
    match = _TEMP_NAME.match(tmp.name)
    mtime = tmp.stat().st_mtime
    if match is None or mtime < time.time() - STALE_TEMP_SECONDS:
        return True
    pid = int(match[1])
    if pid == os.getpid():  # ours, unless a process before us had our pid (a container's 1)
        return mtime < _STARTED
    return not pid_alive(pid)


def _record(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(
        id=row["id"],
        ext=row["ext"],
        mime_type=row["mime_type"],
        file_name=row["file_name"],
        size=row["size"],
        sha256=row["sha256"],
        width=row["width"],
        height=row["height"],
        created_at=row["created_at"],
        owner=row["owner"],
        expires_at=row["expires_at"],
    )
