"""Fixtures shared by the sync tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from homekeep.sync.wire.chunklist import ChunkListBuilder, ListFile
from tests.sync.helpers import SyncServer, small_limit_server, sync_server
from tests.sync.listdata import Spill, close_lists


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SyncServer]:
    """One sync server for a test module, with one sync token.

    A module that sets ``SMALL_REQUESTS = True`` gets a server that takes request bodies
    of at most 1 MiB (to reach the limits with small data).
    """
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    start = small_limit_server if getattr(request.module, "SMALL_REQUESTS", False) else sync_server
    with start(folder) as srv:
        yield srv


@pytest.fixture
def spill(tmp_path: Path) -> Iterator[Spill]:
    """Build a ListFile from packed entries (a builder spilling past 4 entries); closed after."""
    made: list[ListFile] = []

    def build(raw: bytes) -> ListFile:
        builder = ChunkListBuilder(tmp_path, spill=4)
        builder.extend(raw)
        built = builder.done()
        assert isinstance(built, ListFile), built
        made.append(built)
        return built

    yield build
    close_lists(*made)


@pytest.fixture(scope="module")
def port(server: SyncServer) -> int:
    """The data port of the module's server."""
    from tests.sync.dataport_helpers import data_port

    return data_port(server)
