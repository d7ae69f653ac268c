"""What every Subsonic endpoint is handed: the call's parameters, its user, the library."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from homekeep.core.errors import HomekeepError
from homekeep.core.users import User
from homekeep.music.service import Service
from homekeep.music.streaming import Transcoder
from homekeep.music.subsonic.params import MAX_ID, Params, to_int
from homekeep.music.subsonic.responses import NOT_FOUND, SubsonicError
from homekeep.music.subsonic.shapes import ALBUM, ARTIST, Shapes
from homekeep.music.userdata import UserData

log = logging.getLogger(__name__)


class Scans:
    """``startScan`` runs one library scan at a time on a thread of its own."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self._lock = threading.Lock()  # guards _thread
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._scan, name="subsonic-scan", daemon=True)
            self._thread.start()

    def _scan(self) -> None:
        try:
            result = self.svc.scanner().scan(self.svc.scan_roots())
            log.info("scan started by a Subsonic client: %s", result.counts)
        except HomekeepError as exc:
            log.error("scan started by a Subsonic client failed: %s", exc.message)


@dataclass
class Call:
    """One authenticated call."""

    params: Params
    user: User
    svc: Service
    data: UserData
    transcoder: Transcoder
    scans: Scans
    range_header: str | None = None
    shapes: Shapes = field(init=False)

    def __post_init__(self) -> None:
        self.shapes = Shapes(self.data, self.user)

    @property
    def client(self) -> str:
        return self.params.get("c") or "subsonic"

    def song_id(self, text: str, name: str = "id") -> int:
        """A song id (a track id), or error 70 for anything that cannot be one."""
        try:
            return to_int(name, text, 0, MAX_ID)
        except SubsonicError as exc:
            raise SubsonicError(NOT_FOUND, f"no song with id {text[:40]!r}") from exc

    def album_id(self, text: str) -> str:
        if not text.startswith(ALBUM):
            raise SubsonicError(NOT_FOUND, f"no album with id {text[:40]!r}")
        return text[len(ALBUM) :]

    def artist_id(self, text: str) -> str:
        if not text.startswith(ARTIST):
            raise SubsonicError(NOT_FOUND, f"no artist with id {text[:40]!r}")
        return text[len(ARTIST) :]


Handler = Callable[[Call], dict[str, Any] | Response]
