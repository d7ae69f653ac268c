"""HTTP: the JSON API (/api/images), the short links (/i/<id>), the pages (/images/)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from homekeep.core.area import AreaContext, Summary, WebParts
from homekeep.core.auth import Caller, authenticate
from homekeep.core.db import utcnow
from homekeep.core.errors import Forbidden, NotFound
from homekeep.core.output import human_size
from homekeep.core.web import templates
from homekeep.images import thumbnails
from homekeep.images.ingest import check, save
from homekeep.images.ratelimit import client_key
from homekeep.images.service import BLOB_MAX, open_service, stamp
from homekeep.images.store import ImageRecord
from homekeep.images.uploads import parse

log = logging.getLogger(__name__)

YEAR = 31_536_000
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Referrer-Policy": "no-referrer",
}
_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "file_name": {"type": "string"},
                        "mime_type": {"type": "string", "example": "image/png"},
                        "data": {"type": "string", "description": "base64, or a data: URL"},
                        "expires_in": {"type": "integer", "minimum": 1},
                    },
                    "additionalProperties": False,
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "expires_in": {"type": "integer"},
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def build(ctx: AreaContext) -> WebParts:
    """Build the routers and the expiry sweep of the images area."""
    images = open_service(ctx)
    config, store, db = images.config, images.store, images.store.db
    pages_tpl = templates(Path(__file__).parent / "templates")
    api = APIRouter()
    pages = APIRouter()
    root = APIRouter()

    async def lookup(image_id: str) -> tuple[ImageRecord, os.stat_result]:
        """The record of a live image and its file's stat; 404 once deleted by anyone."""
        found = images.cached(image_id)
        if found is None:
            record = await db.run(store.get, image_id)
            if record is None:
                raise NotFound(f"no image {image_id!r}")
            try:
                stat = store.path(record).stat()
            except FileNotFoundError:
                raise NotFound(f"image {image_id!r} is gone") from None
            images.remember(record, stat)
            found = record, stat
        if found[0].expired():
            raise NotFound(f"image {image_id!r} has expired")
        return found

    def base(request: Request) -> str:
        local = request.scope.get("server")  # the socket's own address, not a header
        return images.base_url((str(local[0]), int(local[1])) if local and local[1] else None)

    @api.post("", status_code=201, openapi_extra=_UPLOAD_DOC)
    async def upload(request: Request) -> JSONResponse:
        """Upload an image: base64 JSON, multipart (`file`), or a raw body with its type."""
        token = await authenticate(request, "images", required=not config.open_uploads)
        client = request.client.host if request.client else "unknown"
        images.limiter.hit(f"token:{token.id}" if token else client_key(client))
        received = await parse(request, config.max_bytes, config.file_name_max)
        async with images.decoding:  # waiting here holds no worker thread
            checked = await anyio.to_thread.run_sync(check, config, images.allowed, received)
        result = await anyio.to_thread.run_sync(
            save, store, config, checked, received, token.id if token else None
        )
        root_url = base(request)
        body = images.view(result.record, root_url)
        body["delete_url"] = (
            f"{root_url}/images/delete/{result.record.id}/{result.delete_token}"
            if result.delete_token
            else None
        )
        return JSONResponse(
            body, status_code=201 if result.created else 200, headers={"Location": body["url"]}
        )

    @api.get("")
    async def list_images(
        request: Request,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        """List the calling token's uploads, newest first."""
        token = await authenticate(request, "images")
        assert token is not None
        records, total = await db.run(store.page, token.id, limit=limit, offset=offset)
        root_url = base(request)
        return {
            "images": [images.view(r, root_url) for r in records],
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None,
        }

    @api.get("/{image_id}")
    async def info(image_id: str, request: Request) -> dict[str, Any]:
        """One image's metadata."""
        record, _ = await lookup(image_id)
        return images.view(record, base(request))

    @api.get("/{image_id}/thumbnail", response_class=Response)
    async def thumbnail(image_id: str) -> Response:
        """A WebP preview of at most 320x320 pixels (the first frame of an animation)."""
        record, _ = await lookup(image_id)
        target = store.thumb_path(record.id)
        try:
            data = await anyio.to_thread.run_sync(thumbnails.kept, target)
            if data is None:
                async with images.decoding:
                    data = await anyio.to_thread.run_sync(
                        thumbnails.make, store.path(record), record.ext, target
                    )
        except FileNotFoundError:
            images.forget(record.id)
            raise NotFound(f"image {image_id!r} is gone") from None
        headers = {**SAFE_HEADERS, "Cache-Control": "public, max-age=86400"}
        return Response(data, media_type="image/webp", headers=headers)

    async def remove(record: ImageRecord) -> None:
        await db.run(store.delete, record.id)
        images.forget(record.id)

    @api.delete("/{image_id}")
    async def delete(image_id: str, request: Request) -> dict[str, str]:
        """Delete an image: with its delete token (X-Delete-Token or ?token=), or as its owner."""
        record, _ = await lookup(image_id)
        secret = request.headers.get("x-delete-token") or request.query_params.get("token")
        if secret:
            if not await db.run(store.check_delete_token, image_id, secret):
                raise Forbidden("wrong delete token for this image")
        else:
            token = await authenticate(request, "images")
            if token is None or token.id != record.owner:
                raise Forbidden("only the uploader's token or the delete token may delete it")
        await remove(record)
        return {"deleted": image_id}

    @root.api_route("/i/{name}", methods=["GET", "HEAD"], include_in_schema=True)
    async def serve_image(name: str, request: Request) -> Response:
        """The image itself, at the link the upload returned."""
        image_id, dot, ext = name.partition(".")
        record, stat = await lookup(image_id)
        if dot and ext != record.ext:
            raise NotFound(f"no image {name!r}; its link ends in .{record.ext}")
        etag = f'"{record.sha256}"'
        max_age = YEAR
        if record.expires_at is not None:
            left = _seconds_between(utcnow(), record.expires_at)
            max_age = max(0, min(YEAR, left))
        headers = {
            **SAFE_HEADERS,
            "ETag": etag,
            "Cache-Control": f"public, max-age={max_age}, immutable",
            "Content-Disposition": f'inline; filename="{record.file}"',
        }
        inm = request.headers.get("if-none-match")
        if inm is not None and _etag_matches(inm, etag):
            return Response(status_code=304, headers=headers)
        if config.accel_redirect:
            headers["X-Accel-Redirect"] = config.accel_redirect + record.file
            return Response(status_code=200, headers=headers, media_type=record.mime_type)
        path = store.path(record)
        if stat.st_size <= BLOB_MAX and "range" not in request.headers:
            seen = stamp(stat)
            body = images.blob(record.id, seen)
            if body is None:
                try:
                    body = await anyio.to_thread.run_sync(path.read_bytes)
                except FileNotFoundError:
                    images.forget(record.id)
                    raise NotFound(f"image {image_id!r} is gone") from None
                images.keep_blob(record.id, seen, body)
            headers["Accept-Ranges"] = "bytes"
            headers["Last-Modified"] = formatdate(stat.st_mtime, usegmt=True)
            return Response(body, headers=headers, media_type=record.mime_type)
        return FileResponse(path, media_type=record.mime_type, headers=headers, stat_result=stat)

    @pages.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        return pages_tpl.TemplateResponse(
            request,
            "images.html",
            {"allowed": images.allowed, "max_bytes": config.max_bytes, "open": config.open_uploads},
        )

    async def delete_page(
        request: Request, image_id: str, secret: str, *, confirm: bool
    ) -> HTMLResponse:
        record = await db.run(store.get, image_id)
        valid = record is not None and await db.run(store.check_delete_token, image_id, secret)
        state = "invalid"
        if valid and record is not None:
            state = "confirm"
            if confirm:
                await remove(record)
                state = "deleted"
        return pages_tpl.TemplateResponse(
            request,
            "delete.html",
            {"record": record, "state": state, "image_id": image_id},
            # A wrong token for an image that exists is refused, as DELETE refuses it.
            status_code=200 if state != "invalid" else 404 if record is None else 403,
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    # the delete links are for whoever holds the secret, logged in or not: public routes
    @root.get(
        "/images/delete/{image_id}/{secret}", response_class=HTMLResponse, include_in_schema=False
    )
    async def delete_confirm(image_id: str, secret: str, request: Request) -> HTMLResponse:
        return await delete_page(request, image_id, secret, confirm=False)

    @root.post(
        "/images/delete/{image_id}/{secret}", response_class=HTMLResponse, include_in_schema=False
    )
    async def delete_do(image_id: str, secret: str, request: Request) -> HTMLResponse:
        return await delete_page(request, image_id, secret, confirm=True)

    sweeper: list[asyncio.Task[None]] = []

    async def sweep_forever() -> None:
        try:
            for name in await db.run(store.tidy):
                log.warning("removed %s: a file without a record, left by a crash", name)
        except Exception:
            log.exception("could not tidy the images folder at start")
        while True:
            try:
                for image_id in await db.run(store.sweep):
                    images.forget(image_id)
                    log.info("image %s expired and was removed", image_id)
            except Exception:
                log.exception("expiry sweep failed; next in %s s", config.sweep_interval_seconds)
            await asyncio.sleep(config.sweep_interval_seconds)

    async def start() -> None:
        sweeper.append(asyncio.create_task(sweep_forever(), name="images-expiry-sweep"))

    async def stop() -> None:
        for task in sweeper:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        db.close()

    async def summary(caller: Caller) -> Summary:
        sql = "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM images"
        row = await db.run(db.query_one, sql)
        return {
            "images": row["n"] if row else 0,
            "disk use": human_size(row["bytes"] if row else 0),
        }

    return WebParts(
        api=api, pages=pages, root=root, startup=[start], shutdown=[stop], summary=summary
    )


def _seconds_between(start: str, end: str) -> int:
    return int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
