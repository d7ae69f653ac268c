"""Clients map an HTTP error status back to the error class the server raised."""

from __future__ import annotations

import pytest

from homekeep.core import errors


@pytest.mark.parametrize(
    ("status", "cls", "exit_code"),
    [
        (400, errors.UsageError, 2),
        (401, errors.AuthError, 5),
        (403, errors.Forbidden, 5),
        (404, errors.NotFound, 3),
        (409, errors.Conflict, 4),
        (413, errors.PayloadTooLarge, 2),
        (415, errors.UnsupportedMedia, 2),
        (422, errors.InvalidInput, 2),
        (429, errors.RateLimited, 6),
        (503, errors.Unavailable, 7),
        (418, errors.HomekeepError, 1),
    ],
)
def test_status_maps_back_to_the_error_and_its_exit_code(
    status: int, cls: type[errors.HomekeepError], exit_code: int
) -> None:
    found = errors.error_class_for(status)
    assert found is cls
    assert found("server said no").exit_code == exit_code
