"""Short random image ids: drawn from ``secrets``, longer when collisions pile up."""

from __future__ import annotations

import logging
import secrets
import threading

log = logging.getLogger(__name__)

GROW_AFTER = 3  # collisions in a row for one upload before ids get one character longer


class IdGenerator:
    """Makes ids of a configured alphabet and length; the store's UNIQUE key is the judge."""

    def __init__(self, alphabet: str, length: int) -> None:
        self.alphabet = alphabet
        self.length = length
        self._lock = threading.Lock()  # guards growing ``length`` (uploads run on threads)

    def new(self) -> str:
        """Return a fresh random id of the current length.

        Called from many threads: ``secrets`` is thread-safe, and reading the length
        unlocked can only see the old or the new length, either of which is fine.
        """
        return "".join(secrets.choice(self.alphabet) for _ in range(self.length))

    def collided(self, streak: int, length: int) -> bool:
        """Note that an id of ``length`` was taken; grow after ``GROW_AFTER`` in a row.

        Return True if this call made new ids longer (the caller persists the length).
        """
        if streak < GROW_AFTER:
            return False
        with self._lock:
            if self.length != length:
                return False
            self.length += 1
            log.warning(
                "image ids collided %d times in a row: new ids have %d characters",
                streak,
                self.length,
            )
            return True

    def at_least(self, length: int) -> None:
        """Never make ids shorter than ``length`` (a length grown earlier, read back)."""
        with self._lock:
            self.length = max(self.length, length)
