"""The sync server's HTTP API (protocol v1), for `homekeep serve` and `homekeep sync server`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Annotated, Any, BinaryIO, cast

import anyio.to_thread
import zstandard
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from homekeep import __version__
from homekeep.core.area import AreaContext, Summary, WebParts
from homekeep.core.auth import Caller, TokenStore, client_address, require_scope
from homekeep.core.errors import (
    ConfigError,
    HomekeepError,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMedia,
    UsageError,
)
from homekeep.core.hosts import TrustedHosts
from homekeep.core.limits import INT64_MAX, Int64
from homekeep.core.web import add_docs, add_health, install_error_handlers
from homekeep.sync.pages import Pages, api_router, page_router
from homekeep.sync.server import fsops
from homekeep.sync.server.apply import Upload, apply
from homekeep.sync.server.batch import FileSpec, Result
from homekeep.sync.server.ops import (
    MODE_LIMIT,
    FileRequest,
    ReadRequest,
    parse_ops,
    parse_read,
)
from homekeep.sync.server.sharing import Sharing
from homekeep.sync.server.target import Target
from homekeep.sync.server.transfers import live
from homekeep.sync.server.watcher import SharedWatch
from homekeep.sync.service import open_service
from homekeep.sync.store import DEVICE
from homekeep.sync.wire.chunking import DIGESTERS, Digest, Follower, ListMismatch
from homekeep.sync.wire.chunklist import ChunkList, ListReceiver
from homekeep.sync.wire.compression import BODY_MIN, deflate, inflate
from homekeep.sync.wire.protocol import (
    CHUNK_AVG,
    CHUNK_MAX,
    CHUNK_MIN,
    CHUNK_NC,
    PREFIX,
    VERSION,
    check_access,
    check_client,
    check_hash,
    check_path,
)

MAX_PACK_BYTES = 16 << 20
MAX_WAIT = 9.0  # seconds a change long poll may be held (under common client timeouts)
CHANGE_POLL = 0.1  # seconds between looks at a waited-on folder's change counter
SMALL_BODY = 64 << 10  # a request that names a file
WRITEBACK_STEP = 8 << 20
LIST_FEED = 1 << 20  # bytes of a streamed chunk list checked at a time, off the event loop
# the largest zstd window an upload may ask the decoder to keep: the client's level 3
# uses 2 MiB, level 19 8 MiB; a frame may ask for up to 2 GiB per upload otherwise
MAX_WINDOW = 8 << 20


async def read_body(
    request: Request, limit: int, progress: Callable[[int], None] | None = None
) -> bytes | bytearray:
    """Read the request body, refusing more than ``limit`` bytes with 413 (inflated too,
    for a body sent with ``Content-Encoding: zstd``); ``progress`` hears the bytes so far."""
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
        if progress is not None:
            progress(len(body))
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


async def _bound_client(
    client: str, token: Annotated[Caller, Depends(_SYNC_TOKEN)], request: Request
) -> str:
    """The client named in the path, if the request's token may act as it (else 403);
    the device it names (``X-Homekeep-Device``) is kept for the history."""
    named = check_access(token, client)
    device = request.headers.get("x-homekeep-device")
    if device is not None:
        DEVICE.set(check_client(device))
    return named


Client = Annotated[str, Depends(_bound_client)]


def _device(request: Request) -> tuple[str, str]:
    """Who sends (the token's name) and from where, for the sync page."""
    caller: Caller = request.state.caller  # set by the scope check every route has
    return caller.name, client_address(request)


def _declared(request: Request) -> int:
    """The body's declared length (what the page's progress bar counts to), 0 if none."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() and len(declared) < 19 else 0


def _contact_noter(target: Target) -> Callable[..., Any]:
    """A dependency that notes the device calling for a folder (the page's clients)."""
    contacts = live(target).contacts

    async def contact(request: Request, caller: Annotated[Caller, Depends(_SYNC_TOKEN)]) -> None:
        folder = request.path_params.get("client")
        if caller.token is None or not isinstance(folder, str):
            return  # a logged-in person on the page is no device
        try:
            check_access(caller, folder)
        except HomekeepError:
            return  # the route itself refuses it
        device = caller.name
        with contextlib.suppress(HomekeepError):  # a bad header is refused by the route
            device = check_client(request.headers.get("x-homekeep-device") or caller.name)
        row = contacts.note(folder, device, client_address(request))
        if row is not None:
            await anyio.to_thread.run_sync(contacts.write, row)

    return contact


def router(target: Target, *, max_request: int, data_port: int | None = None) -> APIRouter:
    """The protocol routes, relative to the mount point (``/api/sync``)."""
    api = APIRouter(dependencies=[Depends(_SYNC_TOKEN), Depends(_contact_noter(target))])
    transfers = live(target).transfers
    pack_limit = min(max_request, MAX_PACK_BYTES)
    sharing = Sharing(target)

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
            "server_id": target.server_id,
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
        current = await anyio.to_thread.run_sync(target.index.generation, client)
        if generation == current:
            return answer(request, {"generation": current, "unchanged": True})
        gen, entries = await anyio.to_thread.run_sync(target.index.manifest, client)
        top = await anyio.to_thread.run_sync(target.index.top, client)
        return answer(request, {"generation": gen, "entries": entries, "top": top})

    @api.get(f"{PREFIX}/clients/{{client}}/changes")
    async def changes(
        client: Client,
        since: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0,
    ) -> dict[str, int]:
        """The folder's change counter; with ``wait``, answered as soon as it passes
        ``since`` or when ``wait`` seconds are over (a long poll)."""
        deadline = anyio.current_time() + wait
        while True:
            current = await anyio.to_thread.run_sync(target.index.change, client)
            if current > since or anyio.current_time() >= deadline:
                return {"change": current}
            await anyio.sleep(CHANGE_POLL)

    @api.post(f"{PREFIX}/clients/{{client}}/file-chunks")
    async def file_chunks(client: Client, request: Request) -> Response:
        """The chunk list of a file, for a client that receives it (shared folders)."""
        asked = parse_read(await read_body(request, SMALL_BODY), FileRequest)
        found = await anyio.to_thread.run_sync(sharing.file_chunks, client, asked.path)
        chunks = ChunkList(
            b"".join(bytes.fromhex(h) + n.to_bytes(4, "big") for h, n in found.chunks)
        )
        by = await anyio.to_thread.run_sync(target.index.last_device, client, asked.path)
        payload = {"hash": found.hash, "size": found.size, "chunks": chunks.encode(), "by": by}
        return answer(request, payload)

    @api.post(f"{PREFIX}/clients/{{client}}/read")
    async def read(client: Client, request: Request) -> Response:
        """Byte ranges of a file (the chunks a receiving client lacks), zstd if accepted."""
        asked = parse_read(await read_body(request, SMALL_BODY << 4), ReadRequest)
        data = await anyio.to_thread.run_sync(
            sharing.read, client, asked.path, asked.hash.lower(), list(asked.ranges)
        )
        if len(data) < BODY_MIN or "zstd" not in request.headers.get("accept-encoding", ""):
            return Response(data, media_type="application/octet-stream")
        packed = await anyio.to_thread.run_sync(deflate, data)
        headers = {"Content-Encoding": "zstd", "Vary": "Accept-Encoding"}
        return Response(packed, media_type="application/octet-stream", headers=headers)

    @api.post(f"{PREFIX}/clients/{{client}}/ops")
    async def ops(client: Client, request: Request) -> Response:
        """Apply a batch of changes in order; file changes may answer with missing chunks."""
        parsed = parse_ops(await read_body(request, max_request))
        results = await anyio.to_thread.run_sync(apply, target, client, parsed.ops)
        generation = await anyio.to_thread.run_sync(target.index.generation, client)
        return answer(request, {"generation": generation, "results": _plain(results)})

    @api.post(f"{PREFIX}/clients/{{client}}/commit")
    async def commit(client: Client, request: Request) -> Response:
        """Ops plus the chunks they need, in one request: what a batch of small files costs.

        The body is a 4-byte big-endian length, the ops JSON, then a chunk pack; the
        chunks are checked against their ids and used straight from memory, never staged.
        """
        total = _declared(request)
        with transfers.tracking(client, *_device(request), "", total, "commit") as progress:
            body = await read_body(request, max_request, progress.update)
            ops_body, pack = _split_commit(body)
            parsed = parse_ops(ops_body)
            paths = [op.path for op in parsed.ops if hasattr(op, "path")]
            more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
            progress.update(len(body), path=(paths[0] + more) if paths else "", total=len(body))
            records = await anyio.to_thread.run_sync(target.chunks.verify, pack, client)
            inline = {chunk_id: (data, wire) for chunk_id, data, wire in records}
            results = await anyio.to_thread.run_sync(apply, target, client, parsed.ops, inline)
        generation = await anyio.to_thread.run_sync(target.index.generation, client)
        return answer(request, {"generation": generation, "results": _plain(results)})

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
        expected = await anyio.to_thread.run_sync(
            target.chunks.pending_list, client, spec.hash, spec.size
        )
        device, address = _device(request)
        with transfers.tracking(client, device, address, spec.path, size, "http") as progress:
            tmp = target.temp_name()
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
                        progress.update(sink.written)
                        if sink.written - flushed >= WRITEBACK_STEP:
                            fsops.start_writeback(out.fileno(), flushed, sink.written - flushed)
                            flushed = sink.written
                follower.publish(sink.written, done=True)
                try:
                    digest: Digest | None = await anyio.to_thread.run_sync(digesting.result)
                except ListMismatch:
                    digest = None  # not the list announced: check_upload cuts the file itself
                upload = [Upload(spec, tmp, wire, digest)]
                (result,) = await anyio.to_thread.run_sync(apply, target, client, upload)
            except zstandard.ZstdError as exc:
                raise InvalidInput(
                    f"upload of {path!r} is not a zstd stream this server takes: a valid one, "
                    f"with a window of at most {MAX_WINDOW >> 20} MiB"
                ) from exc
            finally:
                if follower is not None:
                    follower.abort()  # no-op once done; else wakes the digesting thread to stop
                tmp.unlink(missing_ok=True)
        return result.as_dict()

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
        tmp = target.temp_name()
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
            await anyio.to_thread.run_sync(target.chunks.keep_list, client, file_hash, tmp)
        finally:
            tmp.unlink(missing_ok=True)
        return {"status": "kept", "chunks": receiver.count}

    @api.put(f"{PREFIX}/clients/{{client}}/chunks")
    async def chunks(client: Client, request: Request) -> dict[str, Any]:
        """Stage a pack of chunks (each verified against its id) for the next commits."""
        total = _declared(request)
        with transfers.tracking(client, *_device(request), "", total, "chunks") as progress:
            body = await read_body(request, pack_limit, progress.update)
            stored, wire = await anyio.to_thread.run_sync(target.chunks.receive, client, body)
        return {"stored": stored, "bytes": wire}

    return api


def _plain(results: list[Result]) -> list[dict[str, Any]]:
    return [result.as_dict() for result in results]


def _collector(target: Target) -> Any:
    async def collect() -> None:
        await anyio.to_thread.run_sync(target.chunks.collect)

    return collect


def build(ctx: AreaContext) -> WebParts:
    """Mount the sync server in `homekeep serve` when [sync] root is set."""
    svc = open_service(ctx)
    cfg = svc.config
    if cfg.root is None:

        async def idle(caller: Caller) -> Summary:
            return {"server": "off: set [sync] root to receive clients here"}

        return WebParts(summary=idle, pages=page_router(on=False))
    try:
        store = svc.open_server(cfg.root)
    except UsageError as exc:
        raise ConfigError(f"[sync] root: {exc.message}") from exc

    async def close() -> None:
        store.close()

    async def summary(caller: Caller) -> Summary:
        names = await anyio.to_thread.run_sync(store.index.clients)
        last = await anyio.to_thread.run_sync(store.index.last_event_at)
        shown = ", ".join(sorted(names)[:5]) + (" ..." if len(names) > 5 else "")
        return {"clients": f"{len(names)}: {shown}" if names else 0, "last change": last}

    watch = SharedWatch(
        Sharing(store), interval=cfg.shared_rescan_seconds, keep_days=cfg.keep_versions_days
    )
    api = APIRouter()
    api.include_router(router(store, max_request=cfg.max_request_bytes))
    api.include_router(api_router(Pages(store)))  # the page's JSON, for logged-in users
    return WebParts(
        api=api,
        pages=page_router(on=True),
        startup=[_collector(store), watch.start],
        shutdown=[watch.stop, close],
        summary=summary,
    )


def standalone_app(
    store: Target,
    tokens: TokenStore,
    *,
    max_request: int,
    data_port: int | None = None,
    trusted_hosts: frozenset[str] = frozenset({"*"}),
    shared_rescan: float = 60,
    keep_versions_days: float = 30,
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
    watch = SharedWatch(Sharing(store), interval=shared_rescan, keep_days=keep_versions_days)
    app.router.on_startup.append(watch.start)
    app.router.on_shutdown.append(watch.stop)
    return app
