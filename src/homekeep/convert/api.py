"""HTTP: the client API and the worker API under /api/convert, and the /convert/ page."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from homekeep import __version__
from homekeep.convert import profiles
from homekeep.convert.service import Service, open_service
from homekeep.convert.store import STATUSES, Upload
from homekeep.convert.uploads import check_id, check_sha512
from homekeep.convert.workers import Upkeep, WorkerPool, local_pool
from homekeep.core.area import AreaContext, WebParts
from homekeep.core.auth import Token, require_scope
from homekeep.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, UsageError
from homekeep.core.limits import INT64_MAX
from homekeep.core.web import add_docs, add_health, install_error_handlers, templates

log = logging.getLogger("homekeep.convert")
WORKER_SCOPE = "convert-worker"
_WORKER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}/\d{1,10}/\d{1,4}$")
# Bytes handed to a thread at once to be hashed and written: few enough thread hops.
WRITE_BLOCK = 4 << 20
_OFFSET = re.compile(r"^\d{1,19}$")
CLIENT = Depends(require_scope("convert"))
WORKER = Depends(require_scope(WORKER_SCOPE))


class NewUpload(BaseModel):
    """An upload to open: the file's name, size, checksum and the conversion wanted."""

    model_config = ConfigDict(extra="forbid", strict=True)

    file_name: str = Field(min_length=1, max_length=1024)
    file_size: int = Field(ge=0, le=1 << 62)
    conversion: str = Field(min_length=1, max_length=64)
    sha512_checksum: str | None = Field(default=None, max_length=256)
    client_id: str | None = Field(default=None, min_length=1, max_length=64)


class WorkerHello(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    worker_id: str = Field(pattern=_WORKER_ID.pattern)
    pid: int = Field(default=0, ge=0, le=1 << 31)


class ProgressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent: float = Field(default=0, ge=0, le=100)
    speed: float | None = Field(default=None, ge=0, le=1e6)
    seconds_left: float | None = Field(default=None, ge=0, le=1e9)
    out_seconds: float = Field(default=0, ge=0, le=1e9)
    frame: int = Field(default=0, ge=0, le=1 << 40)


class Beat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: str = Field(pattern=_WORKER_ID.pattern)
    progress: ProgressIn = Field(default_factory=ProgressIn)


class Failure(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    errors: list[Annotated[str, Field(max_length=2000)]] = Field(min_length=1, max_length=20)


def _upload_json(svc: Service, upload: Upload, base: str) -> dict[str, Any]:
    return {
        "upload_id": upload.upload_id,
        "upload_url": f"{base}/api/convert/uploads/{upload.upload_id}",
        "state": upload.state,
        "offset": svc.uploads.offset(upload),
        "file_size": upload.file_size,
        "file_name": upload.file_name,
        "conversion": upload.conversion,
        "client_id": upload.client_id,
        "item_id": upload.item_id,
        "error": (
            {"code": upload.error_code, "message": upload.error}
            if upload.state == "refused"
            else None
        ),
    }


def _lease(value: str | None) -> str:
    if not value or not re.match(r"^[0-9a-f]{32}$", value):
        raise Conflict("X-Lease-Token is missing or malformed", code="lease_lost")
    return value


def routers(svc: Service) -> tuple[APIRouter, APIRouter]:
    """The API router and the page router over one service."""
    api = APIRouter()

    async def run(fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @api.get("/server")
    async def server_status(_: Token = CLIENT) -> dict[str, Any]:
        """What this server converts and how busy it is (clients spread items by load)."""
        return dict(await run(svc.status))

    @api.get("/conversions")
    async def conversions(_: Token = CLIENT) -> list[dict[str, Any]]:
        """The conversions offered."""
        return [c.to_json() for c in profiles.offered(svc.config).values()]

    @api.post("/uploads", status_code=201)
    async def create_upload(
        request: Request, body: NewUpload, token: Token = CLIENT
    ) -> JSONResponse:
        """Open a resumable upload; refused now if the conversion, the size or the disk say no."""
        upload = await run(
            lambda: svc.uploads.create(
                client_id=body.client_id or token.name,
                owner=token.id,
                file_name=body.file_name,
                conversion=body.conversion,
                file_size=body.file_size,
                sha512=body.sha512_checksum,
            )
        )
        doc = _upload_json(svc, upload, base(request))
        headers = {"Location": doc["upload_url"], "Upload-Offset": "0"}
        return JSONResponse(doc, status_code=201, headers=headers)

    async def find_upload(upload_id: str) -> Upload:
        return await run(svc.store.upload, check_id(upload_id, "upload id"))  # type: ignore[no-any-return]

    @api.head("/uploads/{upload_id}")
    async def upload_offset(upload_id: str, _: Token = CLIENT) -> Response:
        """Where an upload stands: ``Upload-Offset`` and ``Upload-Length`` headers."""
        checked = check_id(upload_id, "upload id")
        await run(svc.uploads.wait_idle, checked)
        upload = await find_upload(checked)
        headers = {
            "Upload-Offset": str(svc.uploads.offset(upload)),
            "Upload-Length": str(upload.file_size),
            "Upload-State": upload.state,
            "Cache-Control": "no-store",
        }
        if upload.item_id:
            headers["Location"] = f"/api/convert/items/{upload.item_id}"
        return Response(status_code=200, headers=headers)

    @api.get("/uploads/{upload_id}")
    async def upload_info(upload_id: str, request: Request, _: Token = CLIENT) -> dict[str, Any]:
        """An upload's state: open (with its offset), done (with its item), or refused (why)."""
        checked = check_id(upload_id, "upload id")
        await run(svc.uploads.wait_idle, checked)  # as HEAD: the bytes of a cut request count
        return _upload_json(svc, await find_upload(checked), base(request))

    @api.patch("/uploads/{upload_id}", status_code=204)
    async def append(
        upload_id: str,
        request: Request,
        upload_offset: str = Header(alias="Upload-Offset"),
        _: Token = CLIENT,
    ) -> Response:
        """Append the body at ``Upload-Offset``; the last bytes make the item (201, its JSON)."""
        if not _OFFSET.match(upload_offset) or int(upload_offset) > INT64_MAX:
            raise UsageError("Upload-Offset must be a byte count")
        length_text = request.headers.get("content-length")
        length = int(length_text) if length_text and _OFFSET.match(length_text) else None
        checked = check_id(upload_id, "upload id")
        appender = await run(svc.uploads.begin, checked, int(upload_offset), length)
        pending: list[bytes] = []
        size = 0
        # At most one block is written and hashed (on two threads at once) while the next
        # one arrives: the three overlap instead of taking turns.
        writing: asyncio.Future[None] | None = None

        async def settle() -> None:
            """Wait for the block in flight; its error (past the declared size) comes here."""
            nonlocal writing
            if writing is not None:
                flight, writing = writing, None
                await flight

        body = request.stream()
        idle = svc.config.upload_idle_seconds
        step = min(1.0, idle / 4)
        try:
            try:
                # A connection that goes silent (a client gone without a word) is cut here,
                # so the upload is free to resume instead of waiting on a dead peer. The
                # deadline moves at most every quarter of the idle time (and a second):
                # moving it per chunk costs more than the chunk's bytes take to handle.
                # So the silence cut is between three quarters of the idle time and all.
                with anyio.fail_after(idle) as watch:
                    moved = anyio.current_time()
                    async for chunk in body:
                        pending.append(chunk)
                        size += len(chunk)
                        if size >= WRITE_BLOCK:
                            blocks, pending, size = pending, [], 0
                            await settle()
                            writing = asyncio.ensure_future(run(appender.write, blocks))
                        now = anyio.current_time()
                        if now - moved > step:
                            watch.deadline, moved = now + idle, now
            except (ClientDisconnect, TimeoutError):
                log.info("upload %s cut after %d bytes; it can resume", checked, appender.offset)
            await settle()
            if pending:  # what arrived before a cut counts too
                await run(appender.write, pending)
        finally:
            try:
                await settle()  # never close the file under a write in flight
            finally:
                await run(appender.close)
        headers = {"Upload-Offset": str(appender.offset)}
        if not appender.complete:
            return Response(status_code=204, headers=headers)
        item = await run(svc.accept, appender.upload)
        headers["Location"] = f"/api/convert/items/{item.item_id}"
        return JSONResponse(svc.view(item), status_code=201, headers=headers)

    @api.delete("/uploads/{upload_id}")
    async def abort_upload(upload_id: str, _: Token = CLIENT) -> dict[str, str]:
        """Abort an open upload and drop what arrived."""
        upload = await find_upload(upload_id)
        if upload.state != "open":
            raise Conflict(f"upload {upload.upload_id} is {upload.state}")
        await run(svc.uploads.discard, upload.upload_id)
        await run(svc.store.drop_uploads, [upload.upload_id])
        return {"deleted": upload.upload_id}

    @api.get("/items")
    async def list_items(
        client_id: str | None = Query(None, max_length=64),
        status: list[str] = Query([]),  # noqa: B008
        limit: int = Query(200, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=1 << 31),
        _: Token = CLIENT,
    ) -> dict[str, Any]:
        """Items, newest first: of one client (``client_id``), in some ``status`` es."""
        for s in status:
            if s not in STATUSES:
                raise InvalidInput(f"status must be one of: {', '.join(STATUSES)}")
        items = await run(
            lambda: svc.store.items(
                client_id=client_id, statuses=status, limit=limit, offset=offset
            )
        )
        return {"items": [svc.view(i) for i in items]}

    async def find_item(item_id: str) -> Any:
        return await run(svc.store.item, check_id(item_id, "item id"))

    @api.get("/items/{item_id}")
    async def item_status(item_id: str, _: Token = CLIENT) -> dict[str, Any]:
        """One item: its status, progress while in progress, errors when failed."""
        return svc.view(await find_item(item_id))

    @api.api_route("/items/{item_id}/output", methods=["GET", "HEAD"])
    async def fetch(item_id: str, _: Token = CLIENT) -> FileResponse:
        """The converted file (Range requests resume a cut download)."""
        item, path = await run(svc.output, check_id(item_id, "item id"))
        made = profiles.CONVERSIONS[item.conversion]
        name = f"{Path(item.file_name).stem or 'output'}.{made.extension}"
        return FileResponse(
            path,
            media_type=profiles.CONVERSIONS[item.conversion].mime_type,
            filename=name,
            headers={"X-Sha512": item.output_sha512 or "", "Cache-Control": "no-store"},
        )

    @api.post("/items/{item_id}/cancel")
    async def cancel(item_id: str, _: Token = CLIENT) -> dict[str, Any]:
        """Cancel a waiting or running item."""
        return svc.view(await run(svc.cancel, check_id(item_id, "item id")))

    @api.post("/items/{item_id}/retry")
    async def retry(item_id: str, _: Token = CLIENT) -> dict[str, Any]:
        """Queue a failed or cancelled item again."""
        return svc.view(await run(svc.retry, check_id(item_id, "item id")))

    @api.delete("/items/{item_id}")
    async def delete(item_id: str, _: Token = CLIENT) -> dict[str, str]:
        """Delete an item with its input and output."""
        item = await run(svc.delete, check_id(item_id, "item id"))
        return {"deleted": item.item_id}

    @api.get("/workers")
    async def workers(_: Token = CLIENT) -> dict[str, Any]:
        """The workers seen lately and what they run (seed: the broker's thread index)."""
        return {"workers": await run(svc.store.workers)}

    # The worker API: the lease protocol, for workers that share no disk with the server.

    @api.post("/jobs/{item_id}/claim")
    async def claim(item_id: str, hello: WorkerHello, _: Token = WORKER) -> dict[str, Any]:
        """Take a waiting item (409 when another worker has it or it is not waiting)."""
        job = await run(
            lambda: svc.claim(
                check_id(item_id, "item id"), hello.worker_id, remote=True, pid=hello.pid
            )
        )
        if job is None:
            raise Conflict(f"item {item_id} is not waiting for a worker", code="not_waiting")
        return job.to_json()  # type: ignore[no-any-return]

    @api.post("/jobs/{item_id}/heartbeat")
    async def heartbeat(
        item_id: str,
        beat: Beat,
        lease: str | None = Header(None, alias="X-Lease-Token"),
        _: Token = WORKER,
    ) -> dict[str, str]:
        """Extend the lease and report progress; ``state`` says whether to go on."""
        state = await run(
            svc.heartbeat,
            check_id(item_id, "item id"),
            _lease(lease),
            beat.worker_id,
            beat.progress.model_dump(),
        )
        return {"state": state}

    @api.get("/jobs/{item_id}/input")
    async def job_input(
        item_id: str, lease: str | None = Header(None, alias="X-Lease-Token"), _: Token = WORKER
    ) -> FileResponse:
        """The input of a held job (Range requests resume a cut download)."""
        item = await run(svc.held, check_id(item_id, "item id"), _lease(lease))
        path = svc.input_path(item.item_id)
        if not path.is_file():
            raise NotFound(f"the input of item {item.item_id} is gone")
        return FileResponse(path, media_type="application/octet-stream")

    @api.put("/jobs/{item_id}/output")
    async def job_output(
        item_id: str,
        request: Request,
        lease: str | None = Header(None, alias="X-Lease-Token"),
        sha512: str | None = Header(None, alias="X-Sha512"),
        _: Token = WORKER,
    ) -> dict[str, Any]:
        """Hand in a checked output; its SHA-512 must match ``X-Sha512``."""
        item = await run(svc.held, check_id(item_id, "item id"), _lease(lease))
        declared = check_sha512(sha512)
        if declared is None:
            raise UsageError("send the output's SHA-512 in X-Sha512")
        incoming = svc.folder / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        target = incoming / f"{item.item_id}-{uuid.uuid4().hex}.part"
        try:
            digest = await _receive(request, target, svc.config.max_input_bytes)
            if digest != declared:
                raise Conflict("the output arrived damaged (SHA-512); send it again")
            if not await run(svc.finish, item.item_id, item.lease_token, target, digest):
                raise Conflict(
                    f"the lease on item {item.item_id} is no longer held", code="lease_lost"
                )
        finally:
            target.unlink(missing_ok=True)
        return svc.view(await find_item(item.item_id))

    @api.post("/jobs/{item_id}/fail")
    async def job_fail(
        item_id: str,
        failure: Failure,
        lease: str | None = Header(None, alias="X-Lease-Token"),
        _: Token = WORKER,
    ) -> dict[str, str]:
        """End a held job as finished_with_errors."""
        if not await run(svc.fail, check_id(item_id, "item id"), _lease(lease), failure.errors):
            raise Conflict("the lease is no longer held", code="lease_lost")
        return {"state": "finished_with_errors"}

    @api.post("/jobs/{item_id}/release")
    async def job_release(
        item_id: str, lease: str | None = Header(None, alias="X-Lease-Token"), _: Token = WORKER
    ) -> dict[str, str]:
        """Give a held job back to the queue (the worker is stopping)."""
        if not await run(svc.release, check_id(item_id, "item id"), _lease(lease)):
            raise Conflict("the lease is no longer held", code="lease_lost")
        return {"state": "to_do"}

    @api.post("/workers/gone")
    async def worker_gone(hello: WorkerHello, _: Token = WORKER) -> dict[str, str]:
        """A worker says goodbye: it leaves the list of workers."""
        await run(svc.worker_gone, hello.worker_id)
        return {"gone": hello.worker_id}

    pages = APIRouter()
    page_templates = templates(Path(__file__).parent / "templates")

    @pages.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        return page_templates.TemplateResponse(
            request,
            "convert.html",
            {
                "conversions": list(profiles.offered(svc.config).values()),
                "max_input_bytes": svc.config.max_input_bytes,
            },
        )

    return api, pages


async def _receive(request: Request, target: Path, cap: int) -> str:
    """Write a request body to ``target`` within ``cap`` bytes; return its SHA-512."""
    import hashlib

    length = request.headers.get("content-length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > cap:
        raise PayloadTooLarge(f"the body is {length} bytes; the limit is {cap}")
    hasher = hashlib.sha512()
    seen = 0
    with target.open("wb") as fh:
        try:
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > cap:
                    raise PayloadTooLarge(f"the body passed the limit of {cap} bytes")
                hasher.update(chunk)
                await anyio.to_thread.run_sync(fh.write, chunk)
        except ClientDisconnect as exc:
            raise UsageError("the body was cut off; send it again") from exc
    return hasher.hexdigest()


class Runtime:
    """The service, its upkeep and its workers inside one server process."""

    def __init__(self, ctx: AreaContext, *, workers: bool = True) -> None:
        self.service = open_service(ctx)
        self.upkeep = Upkeep(self.service)
        threads = self.service.config.number_of_conversion_threads if workers else 0
        self.pool: WorkerPool | None = local_pool(self.service, threads) if threads else None

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self.service.recover)
        self.upkeep.start()
        if self.pool is not None:
            self.pool.start()

    async def stop(self) -> None:
        if self.pool is not None:
            await anyio.to_thread.run_sync(self.pool.stop)
        self.upkeep.stop()
        self.service.close()


def build(ctx: AreaContext) -> WebParts:
    """The routes, and the workers that `homekeep serve` runs with them."""
    runtime = Runtime(ctx)
    api, pages = routers(runtime.service)
    return WebParts(api=api, pages=pages, startup=[runtime.start], shutdown=[runtime.stop])


def standalone_app(ctx: AreaContext, *, trusted_hosts: frozenset[str], workers: bool) -> FastAPI:
    """The app of `homekeep convert server`: the convert API and page, /healthz and /docs."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from homekeep.core.hosts import TrustedHosts

    runtime = Runtime(ctx, workers=workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="homekeep convert",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.tokens = ctx.tokens
    app.state.nav = []
    install_error_handlers(app)
    add_health(app, {"version": __version__, "areas": ["convert"]})
    add_docs(app, "homekeep convert API")
    api, pages = routers(runtime.service)
    app.include_router(api, prefix="/api/convert", tags=["convert"])
    app.include_router(pages, prefix="/convert", include_in_schema=False)
    app.add_middleware(TrustedHosts, names=trusted_hosts)
    return app
