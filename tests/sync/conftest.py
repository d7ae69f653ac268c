"""Fixtures shared by the sync tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sync.helpers import SyncServer, small_limit_server, sync_server


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
