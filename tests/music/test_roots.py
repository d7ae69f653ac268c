"""Music roots: several at once, and the ones a scan refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from homekeep.core.errors import NotFound, UsageError
from homekeep.music.roots import resolve_roots
from tests.music.conftest import Library


def test_several_roots_and_roots_that_cannot_be_scanned(library: Library, tmp_path: Path) -> None:
    second = tmp_path / "second"
    library.add("a/1", title="one", artist="A", album="X")
    library.add("b/1", root=second, title="two", artist="B", album="Y")
    result = library.scan(library.root, second)
    assert result.counts["tracks"] == 2
    roots = [r["path"] for r in library.rows("SELECT path FROM roots ORDER BY path")]
    assert roots == sorted([str(library.root), str(second)])
    # scanning one root leaves the other root's tracks alone
    assert library.scan(second).counts["tracks"] == 2
    with pytest.raises(NotFound, match="does not exist"):
        resolve_roots([tmp_path / "missing"])
    with pytest.raises(UsageError, match="not a folder"):
        resolve_roots([library.root / "a" / "1.mp3"])
    with pytest.raises(UsageError, match="inside root"):
        resolve_roots([library.root, library.root / "a"])
    with pytest.raises(UsageError, match="overlaps"):
        library.scan(library.root / "a")
    with pytest.raises(UsageError, match="no music roots"):
        resolve_roots([])
