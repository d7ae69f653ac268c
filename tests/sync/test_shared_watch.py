"""`sync watch --folder`: two watching clients and edits on the server, live."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_cli
from tests.sync.helpers import sync_server, wait_until
from tests.sync.test_shared import tree
from tests.sync.test_watch import watching

LIVE = 30.0  # seconds a change may take to show up on a loaded test machine


def has_server_file(side: Path) -> bool:
    return tree(side).get("server.txt") == "written on the server"


def test_two_watchers_and_the_server_stay_equal_live(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "early.txt").write_text("made before anyone watched")
    with sync_server(tmp_path) as srv:
        made = run_cli("sync", "share", "docs", srv.root, data_dir=srv.data_dir)
        assert made.returncode == 0, made.stderr
        on_server = srv.root / "docs"
        args = ("--folder", "docs")
        with (
            watching(a, srv.url, srv.token, "laptop", None, *args),
            watching(b, srv.url, srv.token, "desk", None, *args),
        ):
            assert wait_until(lambda: tree(b) == {"early.txt": "made before anyone watched"}, LIVE)
            (a / "new.txt").write_text("from a")
            assert wait_until(lambda: tree(b).get("new.txt") == "from a", LIVE), tree(b)
            (b / "new.txt").write_text("edited on b")
            assert wait_until(lambda: tree(a).get("new.txt") == "edited on b", LIVE), tree(a)
            (on_server / "server.txt").write_text("written on the server")
            assert wait_until(lambda: has_server_file(a) and has_server_file(b), LIVE), tree(a)
            (a / "early.txt").unlink()
            assert wait_until(lambda: "early.txt" not in tree(b), LIVE), tree(b)
        # b is offline while a changes; b catches up when it watches again
        with watching(a, srv.url, srv.token, "laptop", None, *args):
            (a / "while-b-was-away.txt").write_text("hello b")
            assert wait_until(lambda: "while-b-was-away.txt" in tree(on_server), LIVE)
        with watching(b, srv.url, srv.token, "desk", None, *args):
            assert wait_until(lambda: tree(b) == tree(a), LIVE), (tree(a), tree(b))
    assert tree(a) == tree(b) == tree(on_server)
