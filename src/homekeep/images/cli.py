"""`homekeep images ...`: upload to a server, and manage the images stored here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from homekeep.core.errors import (
    HomekeepError,
    NotFound,
    RateLimited,
    Unavailable,
    UsageError,
    error_from_response,
)
from homekeep.core.output import console, json_option, new_table, print_json
from homekeep.core.runtime import Runtime, pass_runtime
from homekeep.images.config import ImagesConfig
from homekeep.images.formats import sniff
from homekeep.images.service import open_store
from homekeep.images.store import ImageRecord, ImageStore


def _server(rt: Runtime, server: str | None) -> str:
    if server:
        try:
            parts = urlsplit(server)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            valid = False
        if not valid:
            raise UsageError(
                f"--server {server!r} is not a server URL; give one like http://127.0.0.1:8080"
            )
        return server.rstrip("/")
    config = rt.settings.section("images", ImagesConfig)
    return (config.public_url or rt.settings.server.base_url()).rstrip("/")


def _store(rt: Runtime) -> tuple[ImageStore, str]:
    ctx = rt.area("images")
    config = ctx.config(ImagesConfig)
    return open_store(ctx, config), _server(rt, None)


@click.group("images")
def group() -> None:
    """Upload images and share them by short links; manage the images stored here."""


@group.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--server", metavar="URL", help="Server to upload to (default: this one).")
@click.option("--token", envvar="HOMEKEEP_TOKEN", help="API token with scope images.")
@click.option("--expires-in", type=click.IntRange(min=1), help="Delete after N seconds.")
@json_option("Print each server answer as JSON.")
@pass_runtime
def upload(
    rt: Runtime,
    files: tuple[Path, ...],
    server: str | None,
    token: str | None,
    expires_in: int | None,
    as_json: bool,
) -> None:
    """Upload FILES and print the link of each; '-' reads one image from standard input."""
    base = _server(rt, server)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    failures: list[HomekeepError] = []
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for path in files:
            try:
                data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
            except OSError as exc:
                failures.append(UsageError(f"{path}: cannot read: {exc.strerror}"))
                click.echo(f"error: {failures[-1].message}", err=True)
                continue
            mime = sniff(data) or "application/octet-stream"
            form = {"expires_in": str(expires_in)} if expires_in else {}
            try:
                response = client.post(
                    "/api/images", files={"file": (path.name, data, mime)}, data=form
                )
            except httpx.TransportError as exc:
                raise Unavailable(
                    f"cannot reach {base}: {exc}; start it with 'homekeep serve' or pass --server"
                ) from exc
            if response.status_code not in (200, 201):
                failures.append(error_from_response(response, str(path)))
                click.echo(f"error: {failures[-1].message}", err=True)
                continue
            body = response.json()
            click.echo(json.dumps(body) if as_json else body["url"])
    if failures:
        last = failures[-1]
        if isinstance(last, RateLimited):
            raise RateLimited(
                f"{len(failures)} of {len(files)} failed", retry_after=last.retry_after
            )
        raise type(last)(f"{len(failures)} of {len(files)} files failed; see the lines above")


def _row(record: ImageRecord, base: str) -> dict[str, Any]:
    return {**record.to_dict(), "url": f"{base}/i/{record.file}"}


@group.command("list")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@json_option()
@pass_runtime
def list_(rt: Runtime, limit: int, offset: int, as_json: bool) -> None:
    """List the images stored on this machine, newest first."""
    store, base = _store(rt)
    try:
        records, total = store.page(None, limit=limit, offset=offset, everyone=True)
    finally:
        store.db.close()
    if as_json:
        print_json({"images": [_row(r, base) for r in records], "total": total})
        return
    table = new_table("id", "type", "size", "pixels", "name", "created", title=f"{total} images")
    for r in records:
        table.add_row(
            r.file,
            r.mime_type,
            str(r.size),
            f"{r.width}x{r.height}",
            r.file_name,
            r.created_at[:16].replace("T", " "),
        )
    console().print(table)


@group.command()
@click.argument("image_id")
@json_option()
@pass_runtime
def info(rt: Runtime, image_id: str, as_json: bool) -> None:
    """Show one image's record and link."""
    store, base = _store(rt)
    try:
        record = store.get(image_id.split(".", 1)[0])
    finally:
        store.db.close()
    if record is None:
        raise NotFound(f"no image {image_id!r}; see 'homekeep images list'")
    row = _row(record, base)
    if as_json:
        print_json(row)
        return
    width = max(len(k) for k in row)
    for key, value in row.items():
        click.echo(f"{key:<{width}}  {'-' if value is None else value}")


@group.command()
@click.argument("image_id")
@pass_runtime
def delete(rt: Runtime, image_id: str) -> None:
    """Delete an image stored here: its file and its record."""
    store, _ = _store(rt)
    try:
        gone = store.delete(image_id.split(".", 1)[0])
    finally:
        store.db.close()
    if not gone:
        raise NotFound(f"no image {image_id!r}; see 'homekeep images list'")
    click.echo(f"deleted {image_id}")


@group.command("sharex-config")
@click.option("--server", metavar="URL", help="Server ShareX uploads to (default: this one).")
@click.option("--token", envvar="HOMEKEEP_TOKEN", help="API token with scope images.")
@click.option("--name", default="homekeep", show_default=True, help="Uploader name in ShareX.")
@pass_runtime
def sharex_config(rt: Runtime, server: str | None, token: str | None, name: str) -> None:
    """Print a ShareX custom uploader (.sxcu) for this server; save it and open it in ShareX."""
    config: dict[str, Any] = {
        "Version": "15.0.0",
        "Name": name,
        "DestinationType": "ImageUploader",
        "RequestMethod": "POST",
        "RequestURL": f"{_server(rt, server)}/api/images",
        "Body": "MultipartFormData",
        "FileFormName": "file",
        "URL": "{json:url}",
        "DeletionURL": "{json:delete_url}",
        "ErrorMessage": "{json:error.message}",
    }
    if token:
        config["Headers"] = {"Authorization": f"Bearer {token}"}
    click.echo(json.dumps(config, indent=2))
