"""Random edits on two clients of one shared folder: they converge and nothing is lost.

Real clients (the library the CLI runs, in this process) and a real server on loopback;
hypothesis draws the edits and the order of the passes.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homekeep.sync.client.engine import Syncer
from homekeep.sync.client.excludes import Excludes
from homekeep.sync.client.index import ClientIndex
from homekeep.sync.client.transport import Connection
from homekeep.sync.client.twoway import TwoWay
from tests.support import run_cli
from tests.sync.helpers import SyncServer, sync_server
from tests.sync.test_shared import tree

NAMES = ["a.txt", "b.txt", "d/c.txt", "d/e.txt"]
_counter = itertools.count()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncServer]:
    with sync_server(tmp_path_factory.mktemp("prop")) as running:
        yield running


@dataclass
class Client:
    root: Path
    two: TwoWay
    index: ClientIndex
    conn: Connection

    def close(self) -> None:
        self.conn.close()
        self.index.close()


def _client(srv: SyncServer, folder: str, work: Path, me: str) -> Client:
    root = work / me
    root.mkdir()
    conn = Connection(srv.url, srv.token, folder)
    index = ClientIndex(work / f"{me}.sqlite")
    syncer = Syncer(root, conn, index, Excludes.for_folder(root), show_progress=False)
    return Client(root, TwoWay(syncer, me=me, max_delete_percent=100), index, conn)


Step = tuple[str, int, str, str]  # (what, client, name, other name)
steps = st.lists(
    st.tuples(
        st.sampled_from(["write", "delete", "rename", "pass"]),
        st.integers(0, 1),
        st.sampled_from(NAMES),
        st.sampled_from(NAMES),
    ),
    min_size=1,
    max_size=10,
)


def _apply(root: Path, what: str, name: str, other: str) -> None:
    path, dest = root / name, root / other
    if what == "write":
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"v{next(_counter)}")
    elif what == "delete" and path.is_file():
        path.unlink()
    elif what == "rename" and path.is_file() and not dest.exists() and name != other:
        dest.parent.mkdir(exist_ok=True)
        path.rename(dest)


def _everything(root: Path) -> set[str]:
    """Every content in a folder, its versions folder included."""
    found = set()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name != ".homekeep-folder":
                found.add((Path(dirpath) / name).read_text())
    return found


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps)
def test_random_edits_converge_and_lose_nothing(
    srv: SyncServer, tmp_path_factory: pytest.TempPathFactory, plan: list[Step]
) -> None:
    work = tmp_path_factory.mktemp("case")
    folder = f"f{next(_counter)}"
    made = run_cli("sync", "share", folder, srv.root, data_dir=srv.data_dir)
    assert made.returncode == 0, made.stderr
    pair = [_client(srv, folder, work, me) for me in ("laptop", "desk")]
    seen: set[str] = set()  # every content a pass saw: each must survive somewhere
    try:
        for what, who, name, other in plan:
            client = pair[who]
            if what == "pass":
                seen |= set(tree(client.root).values()) - {"<dir>"}
                client.two.run(allow_mass_delete=True)
            else:
                _apply(client.root, what, name, other)
        for client in [*pair, *pair]:
            seen |= set(tree(client.root).values()) - {"<dir>"}
            client.two.run(allow_mass_delete=True)
        on_server = srv.root / folder
        assert tree(pair[0].root) == tree(pair[1].root) == tree(on_server)
        kept = set().union(*(_everything(r) for r in (pair[0].root, pair[1].root, on_server)))
        assert seen <= kept, seen - kept
        assert not any((c.root / ".homekeep-tmp").exists() for c in pair)
    finally:
        for client in pair:
            client.close()
        shutil.rmtree(work, ignore_errors=True)
