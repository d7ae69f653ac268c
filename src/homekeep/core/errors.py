"""The error hierarchy shared by the CLI and the HTTP API.

Every error knows how the CLI exits on it and how the API answers it::

    HomekeepError                exit 1   HTTP 500  internal
    ├── ConfigError              exit 2   HTTP 500  config_error
    ├── UsageError               exit 2   HTTP 400  bad_request
    │   ├── InvalidInput         exit 2   HTTP 422  invalid_input
    │   ├── PayloadTooLarge      exit 2   HTTP 413  payload_too_large
    │   └── UnsupportedMedia     exit 2   HTTP 415  unsupported_media_type
    ├── NotFound                 exit 3   HTTP 404  not_found
    ├── Conflict                 exit 4   HTTP 409  conflict
    ├── AuthError                exit 5   HTTP 401  unauthorized
    │   └── Forbidden            exit 5   HTTP 403  forbidden
    ├── RateLimited              exit 6   HTTP 429  rate_limited
    ├── Unavailable              exit 7   HTTP 503  unavailable
    └── ExternalToolError        exit 8   HTTP 502  tool_failed
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class HomekeepError(Exception):
    """Base of every error homekeep reports to a person or a client."""

    exit_code = 1
    status_code = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers to send with this error."""
        return {}


class ConfigError(HomekeepError):
    """The configuration file or an override is invalid."""

    exit_code = 2
    code = "config_error"


class UsageError(HomekeepError):
    """The request or the command line is wrong; the caller can fix it."""

    exit_code = 2
    status_code = 400
    code = "bad_request"


class InvalidInput(UsageError):
    """Well-formed input whose content is not acceptable."""

    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(UsageError):
    """The input is larger than the configured limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMedia(UsageError):
    """The input is of a type this endpoint does not take."""

    status_code = 415
    code = "unsupported_media_type"


class NotFound(HomekeepError):
    """The thing asked for does not exist."""

    exit_code = 3
    status_code = 404
    code = "not_found"


class Conflict(HomekeepError):
    """The request conflicts with the current state (a lock, a duplicate name)."""

    exit_code = 4
    status_code = 409
    code = "conflict"


class AuthError(HomekeepError):
    """No valid credentials were presented."""

    exit_code = 5
    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(AuthError):
    """The credentials are valid but do not allow this."""

    status_code = 403
    code = "forbidden"

    def headers(self) -> dict[str, str]:
        return {}


class RateLimited(HomekeepError):
    """Too many requests; try again after ``retry_after`` seconds."""

    exit_code = 6
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(HomekeepError):
    """A service we depend on is not reachable right now."""

    exit_code = 7
    status_code = 503
    code = "unavailable"


class ExternalToolError(HomekeepError):
    """An external program (rsync, rclone, ffmpeg...) is missing or failed."""

    exit_code = 8
    status_code = 502
    code = "tool_failed"


def error_class_for(status: int) -> type[HomekeepError]:
    """The most general error class that answers with HTTP ``status``, for API clients.

    A client turns our JSON error back into the error the server raised, so the CLI
    exits with the same code; an unknown status maps to ``HomekeepError``.
    """
    pending: list[type[HomekeepError]] = [HomekeepError]
    while pending:  # breadth first: a base class wins over its subclasses
        cls = pending.pop(0)
        if cls.status_code == status:
            return cls
        pending.extend(cls.__subclasses__())
    return HomekeepError


class _Answer(Protocol):
    """What ``error_from_response`` reads of an HTTP response (httpx's has it all)."""

    status_code: int

    @property
    def text(self) -> str: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


def error_message(response: _Answer) -> str:
    """The message of one of our JSON error answers, or the start of whatever came instead."""
    try:
        message = response.json()["error"]["message"]
        if isinstance(message, str) and message:
            return message
    except (ValueError, KeyError, TypeError, RecursionError):  # not ours, or hostile
        pass
    return response.text[:200].strip() or response.reason_phrase


def error_from_response(response: _Answer, where: str) -> HomekeepError:
    """Turn one of our API's error answers back into the error the server raised."""
    message = f"{where}: {error_message(response)}"
    if response.status_code == 429:
        try:
            wait = max(1, int(response.headers.get("retry-after", "1")))
        except ValueError:
            wait = 1
        return RateLimited(message, retry_after=wait)
    return error_class_for(response.status_code)(message)
