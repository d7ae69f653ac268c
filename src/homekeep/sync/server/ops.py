"""The ops a client sends (protocol v1), checked before anything is applied."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from homekeep.core.errors import InvalidInput
from homekeep.core.limits import Int64
from homekeep.sync.wire.protocol import check_hash, check_path, load_json

MAX_OPS = 5000
MODE_LIMIT = 0o7777


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


class MkdirOp(_Op):
    op: Literal["mkdir"]
    mode: int = Field(ge=0, le=MODE_LIMIT)
    mtime_ns: Int64 | None = None


class LinkOp(_Op):
    op: Literal["link"]
    target: str = Field(min_length=1, max_length=4096)
    mtime_ns: Int64 = 0


class DeleteOp(_Op):
    op: Literal["delete"]


class RenameOp(_Op):
    op: Literal["rename"]
    dest: str


class FileOp(_Op):
    op: Literal["file"]
    size: int = Field(ge=0, le=1 << 50)
    mode: int = Field(ge=0, le=MODE_LIMIT)
    mtime_ns: Int64
    hash: str
    chunks: str | None = Field(default=None, max_length=256 << 20)
    base: str | None = None
    delta: list[list[int] | str] | None = Field(default=None, max_length=1 << 20)


class TopOp(BaseModel):
    """The client's folder itself: its mode and mtime."""

    model_config = ConfigDict(extra="forbid")
    op: Literal["top"]
    mode: int = Field(ge=0, le=MODE_LIMIT)
    mtime_ns: Int64


Op = Annotated[MkdirOp | LinkOp | DeleteOp | RenameOp | FileOp | TopOp, Field(discriminator="op")]


class OpsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ops: list[Op] = Field(max_length=MAX_OPS)


_OPS = TypeAdapter(OpsRequest)


def parse_ops(body: bytes | bytearray) -> OpsRequest:
    """The ops of a request body; anything malformed raises InvalidInput."""
    payload = load_json(body, "request body")
    try:
        request = _OPS.validate_python(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"invalid operation at {where}: {first.get('msg')}") from exc
    for op in request.ops:
        if isinstance(op, TopOp):
            continue
        check_path(op.path)
        if isinstance(op, RenameOp):
            check_path(op.dest)
        if isinstance(op, FileOp):
            check_hash(op.hash)
    return request


class FileRequest(BaseModel):
    """A file of a shared folder a client wants to receive (its chunk list)."""

    model_config = ConfigDict(extra="forbid")
    path: str


class ReadRequest(FileRequest):
    """Byte ranges of a file of a shared folder, while it still has content ``hash``."""

    hash: str
    ranges: list[tuple[Int64, Int64]] = Field(min_length=1, max_length=4096)


Asked = TypeVar("Asked", bound=FileRequest)


def parse_read(body: bytes | bytearray, model: type[Asked]) -> Asked:
    """A file or read request; anything malformed raises InvalidInput."""
    payload = load_json(body, "request body")
    try:
        request = model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"invalid request at {where}: {first.get('msg')}") from exc
    check_path(request.path)
    if isinstance(request, ReadRequest):
        check_hash(request.hash)
    return request
