"""The sync server's HTTP API (protocol v1), for `homekeep serve` and `homekeep sync server`."""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import IO, Annotated, Any, BinaryIO, Literal, cast

import anyio.to_thread
import zstandard
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from homekeep import __version__
from homekeep.core.area import AreaContext, Summary, WebParts
from homekeep.core.auth import Caller, TokenStore, require_scope
from homekeep.core.errors import (
    ConfigError,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMedia,
    UsageError,
)
from homekeep.core.hosts import TrustedHosts
from homekeep.core.limits import INT64_MAX, Int64
from homekeep.core.web import add_docs, add_health, install_error_handlers
from homekeep.sync.server import fsops
from homekeep.sync.service import open_service
from homekeep.sync.store import Batch, FileSpec, ServerStore
from homekeep.sync.wire.chunking import DIGESTERS, Digest, Follower, ListMismatch
from homekeep.sync.wire.compression import BODY_MIN, deflate, inflate
from homekeep.sync.wire.protocol import (
    CHUNK_AVG,
    CHUNK_MAX,
    CHUNK_MIN,
    CHUNK_NC,
    PREFIX,
    VERSION,
    Chunks,
    DeltaTooBig,
    ListFile,
    ListReceiver,
    apply_delta,
    check_access,
    check_hash,
    check_path,
    decode_chunks,
    load_json,
)

MAX_PACK_BYTES = 16 << 20
WRITEBACK_STEP = 8 << 20
MAX_OPS = 5000
MAX_HUGE = 4  # file ops per request whose chunk list is a huge one (the client sends one)
LIST_FEED = 1 << 20  # bytes of a streamed chunk list checked at a time, off the event loop
MODE_LIMIT = 0o7777
# the largest zstd window an upload may ask the decoder to keep: the client's level 3
# uses 2 MiB, level 19 8 MiB; a frame may ask for up to 2 GiB per upload otherwise
MAX_WINDOW = 8 << 20


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


async def read_body(request: Request, limit: int) -> bytes | bytearray:
    """Read the request body, refusing more than ``limit`` bytes with 413 (inflated too,
    for a body sent with ``Content-Encoding: zstd``)."""
    encoding = request.headers.get("content-encoding", "identity")
    if encoding not in ("identity", "zstd"):
        raise UnsupportedMedia(f"unknown Content-Encoding {encoding!r}; use zstd or none")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"request body over the {limit} byte limit")
        except ValueError as exc:
            raise UsageError("malformed Content-Length header") from exc
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(f"request body over the {limit} byte limit")
    if encoding == "zstd":
        return await anyio.to_thread.run_sync(inflate, body, limit)
    return body  # not copied: a huge file's chunk list is megabytes


def answer(request: Request, payload: dict[str, Any]) -> Response:
    """A JSON answer, as zstd when the client accepts it and it is worth it: a manifest or
    the answers to a batch of thousands of files are mostly repeated keys and names."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    if len(body) < BODY_MIN or "zstd" not in request.headers.get("accept-encoding", ""):
        return Response(body, media_type="application/json")
    headers = {"Content-Encoding": "zstd", "Vary": "Accept-Encoding"}
    return Response(deflate(body), media_type="application/json", headers=headers)


def _parse_ops(body: bytes | bytearray) -> OpsRequest:
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


def _apply(
    store: ServerStore,
    client: str,
    request: OpsRequest,
    inline: dict[str, tuple[bytes, int]] | None = None,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with store.lock(client):
        batch = store.begin(client, inline)
        try:
            _apply_ops(store, batch, request.ops, results)
        finally:
            try:
                store.settle(batch)
            finally:
                batch.close()
            touched = [op.path for op in request.ops if not isinstance(op, FileOp | TopOp)]
            touched += [op.dest for op in request.ops if isinstance(op, RenameOp)]
            top = any(isinstance(op, TopOp) for op in request.ops)
            store.restore_dir_times(client, touched, top=top)
    return results


def _apply_ops(
    store: ServerStore, batch: Batch, ops: list[Any], results: list[dict[str, Any]]
) -> None:
    """Apply ops in order; runs of file ops are looked up together and placed together,
    runs of folder ops that only move mtimes are recorded together."""
    client = batch.client
    start = 0
    huge = 0  # file ops in this request with a huge chunk list: each holds a temp file
    while start < len(ops):
        op = ops[start]
        if isinstance(op, MkdirOp):
            end = start
            while end < len(ops) and isinstance(ops[end], MkdirOp):
                end += 1
            store.settle(batch)
            folders = [(o.path, o.mode, o.mtime_ns) for o in ops[start:end]]
            for path, mode, mtime_ns in store.touch_dirs(client, folders):
                store.mkdir(client, path, mode, mtime_ns)
            results.extend({"status": "done"} for _ in range(start, end))
            start = end
            continue
        if not isinstance(op, FileOp):
            store.settle(batch)
            _apply_other(store, client, op, results)
            batch.forget()  # what the batch knew of entries and folders may have changed
            start += 1
            continue
        end = start
        while end < len(ops) and isinstance(ops[end], FileOp):
            end += 1
        specs: list[FileSpec | None] = []
        for file_op in ops[start:end]:
            spec = _spec(store, client, file_op)
            if spec is not None and isinstance(spec.chunks, ListFile):
                huge += 1
                if huge > MAX_HUGE:  # each holds a temp file: a few per request
                    raise InvalidInput(
                        f"more than {MAX_HUGE} files with huge chunk lists in one request"
                    )
            specs.append(spec)
        store.prepare(batch, [spec for spec in specs if spec is not None])
        for spec in specs:
            results.append({"status": "resend"} if spec is None else store.commit_file(batch, spec))
        start = end


def _spec(store: ServerStore, client: str, op: FileOp) -> FileSpec | None:
    """The file an op describes; None when its delta's base is gone (the client resends)."""
    limit = (op.size // CHUNK_MIN) + 2
    chunks: Chunks | None = None
    if op.chunks is not None:
        chunks = decode_chunks(op.chunks, max_chunks=limit)
        op.chunks = None  # the text is megabytes for a huge file; the packed list is enough
    elif op.delta is not None:
        old = store.base_chunks(client, op.path, check_hash(op.base or ""))
        if old is None:
            return None
        try:
            chunks = apply_delta(
                old, op.delta, max_chunks=limit, max_size=op.size, spill_dir=store.tmp
            )
        except DeltaTooBig:
            return None  # "resend": the client sends the whole list, which has no such bound
    return FileSpec(op.path, op.size, op.mode, op.mtime_ns, op.hash.lower(), chunks)


def _apply_other(store: ServerStore, client: str, op: Any, results: list[dict[str, Any]]) -> None:
    if isinstance(op, LinkOp):
        store.symlink(client, op.path, op.target, op.mtime_ns)
        results.append({"status": "done"})
    elif isinstance(op, DeleteOp):
        store.delete(client, op.path)
        results.append({"status": "done"})
    elif isinstance(op, TopOp):
        store.set_top(client, op.mode, op.mtime_ns)
        results.append({"status": "done"})
    else:
        done = store.rename(client, op.path, op.dest)
        results.append({"status": "done" if done else "absent"})


class _Capped:
    """Writes to ``out``, refusing (413) more than ``size`` bytes in all."""

    def __init__(self, out: BinaryIO, size: int, path: str) -> None:
        self.out = out
        self.size = size
        self.path = path
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        if self.written > self.size:
            raise PayloadTooLarge(f"upload of {self.path!r} is longer than its size")
        self.out.write(data)
        return len(data)


def _split_commit(body: bytes | bytearray) -> tuple[bytes, memoryview]:
    """A commit body: a 4-byte big-endian length, that many bytes of ops JSON, a chunk pack."""
    if len(body) < 4:
        raise InvalidInput("commit body is shorter than its 4-byte header")
    length = int.from_bytes(body[:4], "big")
    if length > len(body) - 4:
        raise InvalidInput("commit body is shorter than the ops length in its header")
    view = memoryview(body)
    return bytes(view[4 : 4 + length]), view[4 + length :]


_SYNC_TOKEN = require_scope("sync")  # one callable: FastAPI checks it once per request


async def _bound_client(client: str, token: Annotated[Caller, Depends(_SYNC_TOKEN)]) -> str:
    """The client named in the path, if the request's token may act as it (else 403)."""
    return check_access(token, client)


Client = Annotated[str, Depends(_bound_client)]


def router(store: ServerStore, *, max_request: int, data_port: int | None = None) -> APIRouter:
    """The protocol routes, relative to the mount point (``/api/sync``)."""
    api = APIRouter(dependencies=[Depends(_SYNC_TOKEN)])
    pack_limit = min(max_request, MAX_PACK_BYTES)

    @api.get(f"{PREFIX}/hello")
    async def hello() -> dict[str, Any]:
        """The protocol version and its frozen chunking parameters."""
        return {
            "protocol": VERSION,
            "server": f"homekeep {__version__}",
            "chunking": {
                "algorithm": "fastcdc2020",
                "avg": CHUNK_AVG,
                "min": CHUNK_MIN,
                "max": CHUNK_MAX,
                "nc": CHUNK_NC,
                "hash": "blake3",
            },
            "max_request_bytes": max_request,
            "max_pack_bytes": pack_limit,
            "server_id": store.server_id,
            "data_port": data_port,
            "encodings": ["zstd"],  # request bodies may be sent with Content-Encoding: zstd
            "patch": True,  # chunk pack records may be compressed against a base (FLAG_BASE)
        }

    @api.get(f"{PREFIX}/clients/{{client}}/manifest")
    async def manifest(
        client: Client,
        request: Request,
        generation: Annotated[int, Query(ge=-1, le=INT64_MAX)] = -1,
    ) -> Response:
        """Everything the server holds for a client, unless ``generation`` is current."""
        current = await anyio.to_thread.run_sync(store.generation, client)
        if generation == current:
            return answer(request, {"generation": current, "unchanged": True})
        gen, entries = await anyio.to_thread.run_sync(store.manifest, client)
        top = await anyio.to_thread.run_sync(store.top, client)
        return answer(request, {"generation": gen, "entries": entries, "top": top})

    @api.post(f"{PREFIX}/clients/{{client}}/ops")
    async def ops(client: Client, request: Request) -> Response:
        """Apply a batch of changes in order; file changes may answer with missing chunks."""
        parsed = _parse_ops(await read_body(request, max_request))
        results = await anyio.to_thread.run_sync(_apply, store, client, parsed)
        generation = await anyio.to_thread.run_sync(store.generation, client)
        return answer(request, {"generation": generation, "results": results})

    @api.post(f"{PREFIX}/clients/{{client}}/commit")
    async def commit(client: Client, request: Request) -> Response:
        """Ops plus the chunks they need, in one request: what a batch of small files costs.

        The body is a 4-byte big-endian length, the ops JSON, then a chunk pack; the
        chunks are checked against their ids and used straight from memory, never staged.
        """
        ops_body, pack = _split_commit(await read_body(request, max_request))
        parsed = _parse_ops(ops_body)
        records = await anyio.to_thread.run_sync(store.chunks.verify, pack, client)
        inline = {chunk_id: (data, wire) for chunk_id, data, wire in records}
        results = await anyio.to_thread.run_sync(_apply, store, client, parsed, inline)
        generation = await anyio.to_thread.run_sync(store.generation, client)
        return answer(request, {"generation": generation, "results": results})

    @api.put(f"{PREFIX}/clients/{{client}}/files")
    async def upload(
        client: Client,
        request: Request,
        path: str,
        size: Annotated[int, Query(ge=0, le=1 << 50)],
        mode: Annotated[int, Query(ge=0, le=MODE_LIMIT)],
        mtime_ns: Int64,
        hash: str,
    ) -> dict[str, Any]:
        """Stream one whole file (raw or a zstd stream): for new content, no chunk staging."""
        spec = FileSpec(check_path(path), size, mode, mtime_ns, check_hash(hash), None)
        encoding = request.headers.get("content-encoding", "identity")
        if encoding not in ("identity", "zstd"):
            raise UnsupportedMedia(f"unknown Content-Encoding {encoding!r}; use zstd or none")
        expected = await anyio.to_thread.run_sync(store.expected_chunks, client, spec)
        tmp = store.new_upload()
        wire = 0
        follower: Follower | None = None
        digesting: Future[Digest] | None = None
        try:
            flushed = 0
            with tmp.open("wb") as out:
                sink = _Capped(out, size, path)
                # inflated into the sink a block at a time: past ``size`` it stops, so a
                # small bomb never becomes gigabytes in memory (nor on disk)
                inflate = (
                    zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).stream_writer(
                        cast(IO[bytes], sink),  # it only calls write()
                        write_return_read=True,
                        closefd=False,
                    )
                    if encoding == "zstd"
                    else sink
                )
                # chunked and hashed by a thread as it arrives, not read again afterwards
                follower = Follower(tmp)
                if expected is not None:  # hash along the announced list: no second cut
                    digesting = DIGESTERS.submit(follower.verify, expected)
                else:
                    digesting = DIGESTERS.submit(follower.digest)
                async for part in request.stream():
                    if not part:
                        continue  # the stream ends with an empty part; zstd wants none
                    wire += len(part)
                    inflate.write(part)
                    out.flush()
                    follower.publish(sink.written)
                    if sink.written - flushed >= WRITEBACK_STEP:
                        fsops.start_writeback(out.fileno(), flushed, sink.written - flushed)
                        flushed = sink.written
            follower.publish(sink.written, done=True)
            try:
                digest: Digest | None = await anyio.to_thread.run_sync(digesting.result)
            except ListMismatch:
                digest = None  # not the list announced: commit_upload cuts the file itself
            await anyio.to_thread.run_sync(store.commit_upload, client, spec, tmp, wire, digest)
        except zstandard.ZstdError as exc:
            raise InvalidInput(
                f"upload of {path!r} is not a zstd stream this server takes: a valid one, "
                f"with a window of at most {MAX_WINDOW >> 20} MiB"
            ) from exc
        finally:
            if follower is not None:
                follower.abort()  # no-op once done; else wakes the digesting thread to stop
            tmp.unlink(missing_ok=True)
        return {"status": "done", "via": "upload", "data_bytes": wire}

    @api.put(f"{PREFIX}/clients/{{client}}/lists/{{file_hash}}")
    async def put_list(
        client: Client,
        file_hash: str,
        request: Request,
        size: Annotated[int, Query(ge=1, le=1 << 50)],
    ) -> dict[str, Any]:
        """Keep the chunk list of a huge file (raw 36-byte entries), streamed to disk.

        Ops for that content may then leave their list out: the server finds it here, a
        window at a time, so neither side holds a huge file's list in memory.
        """
        file_hash = check_hash(file_hash)
        tmp = store.temp_name()
        try:
            with tmp.open("wb") as out:
                receiver = ListReceiver(out, size)
                held = bytearray()
                async for part in request.stream():
                    held += part
                    if len(held) >= LIST_FEED:  # checked in a thread: the loop serves others
                        await anyio.to_thread.run_sync(receiver.feed, bytes(held))
                        held = bytearray()
                await anyio.to_thread.run_sync(receiver.feed, bytes(held))
                receiver.finish()
            await anyio.to_thread.run_sync(store.chunks.keep_list, client, file_hash, tmp)
        finally:
            tmp.unlink(missing_ok=True)
        return {"status": "kept", "chunks": receiver.count}

    @api.put(f"{PREFIX}/clients/{{client}}/chunks")
    async def chunks(client: Client, request: Request) -> dict[str, Any]:
        """Stage a pack of chunks (each verified against its id) for the next commits."""
        body = await read_body(request, pack_limit)
        stored, wire = await anyio.to_thread.run_sync(store.receive_pack, client, body)
        return {"stored": stored, "bytes": wire}

    return api


def _collector(store: ServerStore) -> Any:
    async def collect() -> None:
        await anyio.to_thread.run_sync(store.chunks.collect)

    return collect


def build(ctx: AreaContext) -> WebParts:
    """Mount the sync server in `homekeep serve` when [sync] root is set."""
    svc = open_service(ctx)
    cfg = svc.config
    if cfg.root is None:

        async def idle(caller: Caller) -> Summary:
            return {"server": "off: set [sync] root to receive clients here"}

        return WebParts(summary=idle)
    try:
        store = svc.open_server(cfg.root)
    except UsageError as exc:
        raise ConfigError(f"[sync] root: {exc.message}") from exc

    async def close() -> None:
        store.close()

    async def summary(caller: Caller) -> Summary:
        names = await anyio.to_thread.run_sync(store.db.query, "SELECT name FROM clients")
        last = await anyio.to_thread.run_sync(
            store.db.query_one, "SELECT at FROM events ORDER BY id DESC LIMIT 1"
        )
        shown = ", ".join(sorted(r["name"] for r in names)[:5]) + (" ..." if len(names) > 5 else "")
        return {
            "clients": f"{len(names)}: {shown}" if names else 0,
            "last change": last["at"] if last else None,
        }

    return WebParts(
        api=router(store, max_request=cfg.max_request_bytes),
        startup=[_collector(store)],
        shutdown=[close],
        summary=summary,
    )


def standalone_app(
    store: ServerStore,
    tokens: TokenStore,
    *,
    max_request: int,
    data_port: int | None = None,
    trusted_hosts: frozenset[str] = frozenset({"*"}),
) -> FastAPI:
    """The app of `homekeep sync server`: the protocol under /api/sync, /healthz and /docs."""
    app = FastAPI(title="homekeep sync", version=__version__, docs_url=None, redoc_url=None)
    app.state.tokens = tokens
    install_error_handlers(app)
    add_health(app, {"version": __version__, "protocol": VERSION})
    add_docs(app, "homekeep sync API")
    api = router(store, max_request=max_request, data_port=data_port)
    app.include_router(api, prefix="/api/sync", tags=["sync"])
    app.add_middleware(TrustedHosts, names=trusted_hosts)
    return app
