"""zstd on the sync wire: JSON bodies both ways, and chunks compressed against the previous
version of their file (its content as a raw dictionary, as `zstd --patch-from` does).

python-zstandard contexts are not thread-safe: the body contexts here are one per thread;
a dictionary's compressor or decompressor belongs to the call that made it.
"""

from __future__ import annotations

import io
import threading

import zstandard

from homekeep.core.errors import InvalidInput, PayloadTooLarge

BODY_LEVEL = 3
PATCH_LEVEL = 5  # against a dictionary of up to 4 MiB, level 3's tables miss most matches
BASE_MAX = 4 << 20  # content this big or bigger is never a dictionary (it streams whole)
BODY_MIN = 512  # bodies shorter than this are sent as they are

_local = threading.local()  # per thread: a zstd context used by two threads at once breaks


def _body_compressor() -> zstandard.ZstdCompressor:
    cctx: zstandard.ZstdCompressor | None = getattr(_local, "cctx", None)
    if cctx is None:
        cctx = _local.cctx = zstandard.ZstdCompressor(level=BODY_LEVEL)
    return cctx


def deflate(body: bytes) -> bytes:
    """A body as one zstd frame."""
    return bytes(_body_compressor().compress(body))


def inflate(body: bytes | bytearray | memoryview, limit: int) -> bytes:
    """A zstd body inflated, refusing more than ``limit`` bytes of it before it is made.

    A few KiB of zstd can stand for gigabytes, so the output is read a bounded amount at a
    time: 413 past ``limit``, 422 for anything that is not zstd.
    """
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)
    out = bytearray()
    try:
        while len(out) <= limit:
            part = reader.read(min(1 << 20, limit + 1 - len(out)))
            if not part:
                break
            out += part
    except zstandard.ZstdError as exc:
        raise InvalidInput(f"request body is not valid zstd: {exc}") from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"request body inflates past the {limit} byte limit")
    return bytes(out)


def inflate_frame(dctx: zstandard.ZstdDecompressor, data: bytes, limit: int, what: str) -> bytes:
    """One zstd frame inflated by ``dctx``; 422 for more than ``limit`` bytes or not zstd.

    ``max_output_size`` bounds only a frame without a content size: one that declares
    gigabytes would get them allocated, so the declared size is checked first.
    """
    try:
        if zstandard.frame_content_size(data) > limit:
            raise InvalidInput(f"{what} declares more than {limit} bytes")
        return bytes(dctx.decompress(data, max_output_size=limit))
    except zstandard.ZstdError as exc:
        raise InvalidInput(f"{what} is not valid zstd") from exc


def _dictionary(base: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def patcher(base: bytes) -> zstandard.ZstdCompressor:
    """A compressor whose dictionary is ``base``, the previous version of a file."""
    return zstandard.ZstdCompressor(level=PATCH_LEVEL, dict_data=_dictionary(base))


def unpatcher(base: bytes) -> zstandard.ZstdDecompressor:
    """The decompressor for what ``patcher(base)`` made."""
    return zstandard.ZstdDecompressor(dict_data=_dictionary(base))
