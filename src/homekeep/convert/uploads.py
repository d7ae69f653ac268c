"""Resumable uploads (tus-like): create with size and SHA-512, append at offsets, then accept.

The file on disk is the truth of an upload's offset, so an upload cut by a lost
connection or a server restart resumes from what was written. The running SHA-512 of
each upload is kept in memory (guarded by one lock) and rebuilt from the file when it
was lost; the whole input is checked against the declared sum before it is accepted.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homekeep.convert import profiles
from homekeep.convert.config import ConvertConfig, check_client_id
from homekeep.convert.store import Store, Upload
from homekeep.core.db import utcnow
from homekeep.core.errors import (
    Conflict,
    HomekeepError,
    InvalidInput,
    PayloadTooLarge,
)

READ_SIZE = 1 << 20
BUSY_WAIT_SECONDS = 5.0
_SHA512 = re.compile(r"^[0-9a-f]{128}$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UUID = re.compile(r"^[0-9a-f]{32}$")


class InsufficientStorage(HomekeepError):
    """Not enough free disk for an input and its expected output."""

    exit_code = 7
    status_code = 507
    code = "insufficient_storage"


def check_file_name(name: str) -> str:
    """A file name is a name: no path, no controls, at most 255 bytes."""
    if not name or name in (".", ".."):
        raise InvalidInput("file_name is empty")
    if "/" in name or "\\" in name:
        raise InvalidInput("file_name must be a name, not a path (no '/' or '\\')")
    if _CONTROL.search(name):
        raise InvalidInput("file_name contains control characters")
    if len(name.encode("utf-8", "surrogatepass")) > 255:
        raise InvalidInput("file_name is longer than 255 bytes")
    return name


def check_sha512(value: str | None) -> str | None:
    """A declared SHA-512: 128 lowercase hex digits (uppercase accepted), or None."""
    if value is None:
        return None
    text = value.strip().lower()
    if not _SHA512.match(text):
        raise InvalidInput("sha512_checksum must be 128 hexadecimal digits")
    return text


def check_id(value: str, what: str) -> str:
    """Ids are UUIDs in hex; anything else is not found rather than a path."""
    text = value.replace("-", "").lower()
    if not _UUID.match(text):
        raise InvalidInput(f"{what} must be a UUID")
    return str(uuid.UUID(text))


@dataclass
class _Running:
    offset: int
    hasher: Any  # hashlib's sha512 object


class Uploads:
    """The upload folder and the open uploads' running checksums."""

    def __init__(self, store: Store, folder: Path, config: ConvertConfig) -> None:
        self.store = store
        self.folder = folder
        self.config = config
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # guards _running and _busy
        self._running: dict[str, _Running] = {}
        self._busy: set[str] = set()
        # Hashes a block while the writing thread stores it (SHA-512 lets go of the GIL).
        self.hashing = ThreadPoolExecutor(4, thread_name_prefix="convert-hash")

    def close(self) -> None:
        self.hashing.shutdown(wait=True)

    def path(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.part"

    def create(
        self,
        *,
        client_id: str,
        owner: str | None,
        file_name: str,
        conversion: str,
        file_size: int,
        sha512: str | None,
    ) -> Upload:
        """Open an upload, or refuse it now: unknown conversion, too large, disk too full."""
        chosen = profiles.get(conversion, self.config)
        check_file_name(file_name)
        try:
            check_client_id(client_id)
        except ValueError as exc:
            raise InvalidInput(f"client_id: {exc}") from exc
        declared = check_sha512(sha512)
        if file_size <= 0:
            raise InvalidInput("the file is empty: there is nothing to convert")
        if file_size > self.config.max_input_bytes:
            raise PayloadTooLarge(
                f"the file is {file_size} bytes; the limit is {self.config.max_input_bytes} "
                "([convert] max_input_bytes)"
            )
        needed = file_size + int(file_size * chosen.output_ratio)
        free = shutil.disk_usage(self.folder).free - self.store.open_upload_bytes()
        if free - needed < self.config.min_free_bytes:
            raise InsufficientStorage(
                f"not enough free disk: the input and its output need about {needed} bytes, "
                f"{max(0, free)} are free and {self.config.min_free_bytes} must stay free "
                "([convert] min_free_bytes)"
            )
        upload_id = str(uuid.uuid4())
        self.store.add_upload(
            {
                "upload_id": upload_id,
                "created_at": utcnow(),
                "expires_at": time.time() + self.config.upload_expiry_seconds,
                "client_id": client_id,
                "owner": owner,
                "file_name": file_name,
                "conversion": chosen.name,
                "sha512": declared,
                "file_size": file_size,
                "state": "open",
            }
        )
        self.path(upload_id).touch()
        return self.store.upload(upload_id)

    def offset(self, upload: Upload) -> int:
        """How many bytes of an upload have arrived."""
        if upload.state == "done":
            return upload.file_size
        try:
            return self.path(upload.upload_id).stat().st_size
        except FileNotFoundError:
            return 0

    def begin(self, upload_id: str, offset: int, length: int | None) -> Appender:
        """Start appending at ``offset``; 409 unless it is where the upload stands."""
        upload = self.store.upload(upload_id)
        if upload.state != "open":
            where = f" as item {upload.item_id}" if upload.item_id else f": {upload.error}"
            raise Conflict(f"upload {upload_id} is {upload.state}{where}")
        busy = f"another request is writing upload {upload_id}; try again soon"
        if not self.wait_idle(upload_id):
            raise Conflict(busy, code="upload_busy")
        with self._lock:
            if upload_id in self._busy:
                raise Conflict(busy, code="upload_busy")
            self._busy.add(upload_id)
        try:
            current = self.offset(upload)
            if offset != current:
                raise Conflict(
                    f"Upload-Offset {offset} is not where upload {upload_id} stands ({current}); "
                    "ask with HEAD and resume from there",
                    code="offset_mismatch",
                )
            if length is not None and offset + length > upload.file_size:
                raise PayloadTooLarge(
                    f"{length} bytes at offset {offset} pass the declared size {upload.file_size}"
                )
            return Appender(self, upload, current)
        except BaseException:
            self._release(upload_id)
            raise

    def wait_idle(self, upload_id: str, seconds: float = BUSY_WAIT_SECONDS) -> bool:
        """Wait (a bounded time) until no request writes ``upload_id``; False if one still does.

        A cut connection is noticed a moment after the client gave up on it, so a client
        that resumes at once should find the bytes of its last request counted.
        """
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                if upload_id not in self._busy:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def _release(self, upload_id: str) -> None:
        with self._lock:
            self._busy.discard(upload_id)

    def _hasher(self, upload_id: str, offset: int) -> Any:
        """The running SHA-512 at ``offset``, rebuilt from the file when it was lost."""
        with self._lock:
            running = self._running.get(upload_id)
            if running is not None and running.offset == offset:
                return running.hasher
        hasher = hashlib.sha512()
        with self.path(upload_id).open("rb") as fh:
            left = offset
            while left > 0 and (block := fh.read(min(READ_SIZE, left))):
                hasher.update(block)
                left -= len(block)
        return hasher

    def _keep(self, upload_id: str, offset: int, hasher: Any) -> None:
        with self._lock:
            self._running[upload_id] = _Running(offset, hasher)

    def sha512(self, upload: Upload) -> str:
        """The SHA-512 of a fully arrived upload."""
        digest: str = self._hasher(upload.upload_id, upload.file_size).hexdigest()
        return digest

    def discard(self, upload_id: str) -> None:
        """Forget an upload's bytes (refused, expired, or moved into the queue)."""
        with self._lock:
            self._running.pop(upload_id, None)
        self.path(upload_id).unlink(missing_ok=True)

    def expire(self) -> int:
        """Drop uploads past their expiry, and their files; return how many."""
        gone = self.store.expired_uploads(time.time())
        for upload_id in gone:
            self.discard(upload_id)
        self.store.drop_uploads(gone)
        return len(gone)

    def tidy(self) -> list[str]:
        """Remove upload files that no open upload owns (left by a crash)."""
        keep = self.store.open_upload_ids()
        removed = []
        for path in self.folder.iterdir():
            if path.name.removesuffix(".part") not in keep:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed


class Appender:
    """Writes one request's bytes at the end of an upload; one request at a time.

    Each ``write`` stores its blocks on the calling thread while a thread of the hashing
    pool adds them to the running SHA-512: the file belongs to the one, the hasher to
    the other, and ``write`` returns only once both are done.
    """

    def __init__(self, uploads: Uploads, upload: Upload, offset: int) -> None:
        self.uploads = uploads
        self.upload = upload
        self.offset = offset
        self._hasher = uploads._hasher(upload.upload_id, offset)
        self._fh = uploads.path(upload.upload_id).open("r+b")
        self._fh.seek(offset)
        self._start = offset

    @property
    def complete(self) -> bool:
        return self.offset == self.upload.file_size

    def write(self, blocks: Sequence[bytes]) -> None:
        """Append ``blocks`` (as they came off the network: no joined copy)."""
        count = sum(len(b) for b in blocks)
        if count > self.upload.file_size - self.offset:
            self._fh.truncate(self._start)  # the request was wrong: keep none of it
            self.offset = self._start
            self._hasher = None
            raise PayloadTooLarge(
                f"the body passes the declared size of {self.upload.file_size} bytes"
            )
        hasher = self._hasher
        hashing = self.uploads.hashing.submit(_update, hasher, blocks)
        try:
            for block in blocks:
                self._fh.write(block)  # larger than its buffer: written through, not copied
        except BaseException:
            self._hasher = None  # it may have seen bytes the file has not: rebuilt later
            raise
        finally:
            hashing.result()
        self.offset += count

    def close(self) -> None:
        """Make what arrived durable and remember the running checksum."""
        try:
            self._fh.flush()
            self._fh.close()
            if self._hasher is not None:
                self.uploads._keep(self.upload.upload_id, self.offset, self._hasher)
        finally:
            self.uploads._release(self.upload.upload_id)


def _update(hasher: Any, blocks: Sequence[bytes]) -> None:
    for block in blocks:
        hasher.update(block)
