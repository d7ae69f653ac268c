"""The parameters of one Subsonic call: read, typed and bounded, or a Subsonic error."""

from __future__ import annotations

import re
from collections.abc import Iterable

from homekeep.music.subsonic.responses import GENERIC, MISSING, SubsonicError

MAX_VALUE = 2048  # one parameter's characters
MAX_VALUES = 5_000  # values of one repeated parameter (a play queue's ids)
MAX_ID = 2**63 - 1
_INT_RE = re.compile(r"^-?[0-9]{1,19}$")


class Params:
    """A call's parameters (query string and form body together), as a multi-dict."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in items:
            values = self._values.setdefault(key[:64], [])
            if len(values) >= MAX_VALUES:
                raise SubsonicError(GENERIC, f"parameter {key[:64]!r} is repeated too often")
            if len(value) > MAX_VALUE:
                raise SubsonicError(GENERIC, f"parameter {key[:64]!r} is too long")
            values.append(value)

    def get(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name, ()))

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None or value == "":
            raise SubsonicError(MISSING, f"required parameter {name!r} is missing")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer between ``low`` and ``high``; absent or empty is ``default``."""
        text = self.get(name)
        if text is None or text == "":
            return default
        return to_int(name, text, low, high)

    def number(self, name: str, low: float, high: float) -> float:
        text = self.get(name)
        if text is None or text == "":
            return low
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise SubsonicError(GENERIC, f"{name} must be a number from {low:g} to {high:g}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        text = self.get(name)
        if text is None or text == "":
            return default
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise SubsonicError(GENERIC, f"{name} must be true or false")


def to_int(name: str, text: str, low: int, high: int) -> int:
    """``text`` as an integer from ``low`` to ``high``, or error 0 naming the parameter."""
    stripped = text.strip()
    if not _INT_RE.match(stripped):
        raise SubsonicError(GENERIC, f"{name} must be an integer, not {text[:40]!r}")
    value = int(stripped)
    if not low <= value <= high:
        raise SubsonicError(GENERIC, f"{name} must be from {low} to {high}")
    return value
