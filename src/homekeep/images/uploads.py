"""The three ways an upload arrives (base64 JSON, multipart, raw body), read within a cap.

The body is counted while it streams in: the request is refused with 413 as soon as it
passes the cap (or at once when Content-Length says so), before anything is decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from homekeep.core.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia, UsageError
from homekeep.images.formats import normalize_mime

_DATA_URL = re.compile(r"^data:([A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)((?:;[^,;]*)*?);base64,")
# C0 and C1 controls (terminal escapes), and the bidi controls that make "cat\u202egnp.exe"
# show as "catexe.png".
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Types that say nothing about an image: the bytes alone decide (curl --data-binary sends
# application/x-www-form-urlencoded unless told otherwise).
_UNDECLARED = {"", "application/octet-stream", "application/x-www-form-urlencoded"}
FORM_ROOM = 64 * 1024  # bytes allowed around the image: JSON keys, multipart headers
# the longest expiry anyone may ask for, [images] max_expiry_seconds or not: a century
# (much further and the date passes year 9999: an OverflowError, not an answer)
EXPIRES_MAX = 100 * 365 * 86400


@dataclass(frozen=True)
class Upload:
    """An upload as received: bytes, the declared type (None: let the bytes say), a name."""

    data: bytes
    declared: str | None
    file_name: str
    expires_in: int | None


class UploadJSON(BaseModel):
    """The JSON data standard: a name, a MIME type and the base64 bytes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    file_name: str | None = Field(default=None, description="The original file name.")
    mime_type: str | None = Field(
        default=None, description="The image's MIME type (may come from a data: URL instead)."
    )
    data: str = Field(description="The image, base64 (standard alphabet, padded).")
    expires_in: int | None = Field(
        default=None, ge=1, le=EXPIRES_MAX, description="Delete after N seconds."
    )


async def _capped(request: Request, cap: int) -> AsyncGenerator[bytes, None]:
    length = request.headers.get("content-length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > cap:
        raise PayloadTooLarge(f"the request is {length} bytes; the limit is {cap}")
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            raise PayloadTooLarge(f"the request passed the limit of {cap} bytes")
        yield chunk


async def _read(request: Request, cap: int) -> bytes:
    return b"".join([chunk async for chunk in _capped(request, cap)])


def clean_name(raw: str | None, limit: int) -> str:
    """Return the client's file name as safe metadata: the last path part, length-capped."""
    if not raw:
        return ""
    if _CONTROL.search(raw):
        raise InvalidInput(
            "file_name contains control characters (NUL, newline, escapes, bidi overrides...)"
        )
    name = PureWindowsPath(PurePosixPath(raw).name).name.strip()
    return name[:limit]


def decode_base64(text: str) -> tuple[bytes, str | None]:
    """Decode strict base64, with an optional data: URL prefix; return bytes and its type."""
    mime = None
    if match := _DATA_URL.match(text):
        mime = match[1]
        text = text[match.end() :]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"data is not valid base64: {exc}") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise InvalidInput("data is not canonical base64 (stray padding bits)")
    return data, mime


def parse_json(body: bytes, name_limit: int) -> Upload:
    """Parse and check the JSON form of an upload."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise UsageError("the body is JSON nested too deeply") from exc
    try:
        parsed = UploadJSON.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidInput(f"{where}: {err['msg']}") from exc
    data, url_mime = decode_base64(parsed.data)
    declared = parsed.mime_type or url_mime
    if declared is None:
        raise InvalidInput("give mime_type, or a data: URL that names the type")
    if url_mime and normalize_mime(url_mime) != normalize_mime(declared):
        raise UnsupportedMedia(f"the data: URL says {url_mime} but mime_type says {declared}")
    return Upload(data, declared, clean_name(parsed.file_name, name_limit), parsed.expires_in)


async def parse_multipart(request: Request, cap: int, name_limit: int) -> Upload:
    """Parse a multipart form with a ``file`` part (curl -F, ShareX, the web page)."""
    parser = MultiPartParser(
        request.headers, _capped(request, cap), max_files=1, max_fields=8, max_part_size=1024
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise UsageError(f"malformed multipart body: {exc.message}") from exc
    try:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise UsageError("the multipart form has no 'file' part: send the image as 'file'")
        data = await part.read()
        declared = normalize_mime(part.content_type or "")
        expires = form.get("expires_in")
        return Upload(
            data,
            None if declared in _UNDECLARED else declared,
            clean_name(part.filename, name_limit),
            _positive_int(expires) if isinstance(expires, str) else None,
        )
    finally:
        await form.close()


async def parse_raw(request: Request, cap: int, name_limit: int) -> Upload:
    """Take the whole body as the image; its type is the Content-Type header."""
    declared = normalize_mime(request.headers.get("content-type", ""))
    name = request.headers.get("x-file-name") or request.query_params.get("name")
    expires = request.query_params.get("expires_in")
    data = await _read(request, cap)
    return Upload(
        data,
        None if declared in _UNDECLARED else declared,
        clean_name(unquote(name) if name else None, name_limit),
        _positive_int(expires) if expires is not None else None,
    )


async def parse(request: Request, max_bytes: int, name_limit: int) -> Upload:
    """Read an upload in whichever of the three forms the Content-Type names.

    The cap is ``max_bytes`` for a raw body, plus room for the form around it, or for
    base64's 4/3 growth and the JSON around it.
    """
    kind = normalize_mime(request.headers.get("content-type", ""))
    if kind == "application/json":
        cap = (max_bytes + 2) // 3 * 4 + FORM_ROOM
        return parse_json(await _read(request, cap), name_limit)
    if kind == "multipart/form-data":
        return await parse_multipart(request, max_bytes + FORM_ROOM, name_limit)
    return await parse_raw(request, max_bytes, name_limit)


def _positive_int(text: str) -> int:
    # ASCII digits only: str.isdigit() takes "²", which int() refuses (a 500)
    if not re.fullmatch(r"[0-9]{1,11}", text) or not 1 <= int(text) <= EXPIRES_MAX:
        raise InvalidInput(
            f"expires_in must be a number of seconds from 1 to {EXPIRES_MAX}, got {text[:40]!r}"
        )
    return int(text)
