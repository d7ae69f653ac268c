"""Web: add, change and delete jobs, follow runs, browse a backup and restore from it.

Who may change what: anyone with the backup area reads and starts runs; adding,
changing or deleting a job and restoring files (which writes on the server) take an
admin, or a CLI token with the backup scope, as the daemon's AddDrive does. A job
checks as ``backup init`` and AddDrive check it (``jobcheck.check_job``); the fields a
page may set are listed below: the rest (ssh command, extra tool arguments, include
files, remote targets) stays in the config file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homekeep.backup import browse
from homekeep.backup.jobbook import describe_error
from homekeep.backup.jobcheck import check_job
from homekeep.backup.live import LiveRuns
from homekeep.backup.service import Service
from homekeep.core.auth import Caller
from homekeep.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMedia,
)

MAX_BODY = 64 * 1024
M = TypeVar("M", bound=BaseModel)


class JobFields(BaseModel):
    """What a page may set on a job; each is checked as the config file's ``JobSpec``.

    A field left out keeps its value (an edit) or its default (a new job).
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    source: str | None = Field(default=None, max_length=browse.MAX_PATH)
    target: str = Field(default="", max_length=browse.MAX_PATH)
    method: str = Field(default="mirror", max_length=20)
    every: int | None = Field(default=None, ge=1, le=1_000_000)
    units: str = Field(default="Days", max_length=20)
    cron: str = Field(default="", max_length=200)
    excludes: list[str] = Field(default_factory=list, max_length=200)
    bwlimit: str = Field(default="", max_length=40)
    keep_last: int = Field(default=0, ge=0, le=100_000)
    keep_daily: int = Field(default=0, ge=0, le=100_000)
    keep_weekly: int = Field(default=0, ge=0, le=100_000)
    keep_monthly: int = Field(default=0, ge=0, le=100_000)
    enabled: bool = True


class RestoreRequest(BaseModel):
    """One file or folder of a backup, and where it goes."""

    model_config = ConfigDict(extra="forbid")

    snapshot: str = Field(default="", max_length=100, description="'' for a mirror.")
    path: str = Field(default="", max_length=browse.MAX_PATH, description="'' for all of it.")
    dest: str = Field(max_length=browse.MAX_PATH, description="The folder to restore into.")
    overwrite: bool = Field(default=False, description="Merge into an item that exists.")
    into_source: bool = Field(default=False, description="Allow writing into the job's source.")


async def read_model(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``: 415 for another type, 413 past 64 KiB, else 422."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMedia("send the body as application/json")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"the body is larger than {MAX_BODY // 1024} KiB")
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise InvalidInput(describe_error(exc)) from None


def may_manage(caller: Caller) -> bool:
    """True if ``caller`` may change jobs and restore: an admin, or a CLI token."""
    return caller.admin or (caller.kind == "token" and caller.user is None)


def require_manager(caller: Caller) -> None:
    """403 unless ``caller`` may change jobs and restore."""
    if not may_manage(caller):
        raise Forbidden("only an admin may add, change or delete backup jobs or restore files")


def job_view(svc: Service, name: str) -> dict[str, Any]:
    """A job's fields as the edit form shows them, with where its backup goes."""
    job = svc.jobs.get(name)
    view = job.model_dump(mode="json")
    view["schedule"] = job.schedule_text
    return view


def routes(svc: Callable[[], Service], live: LiveRuns, scope: Callable[..., Any]) -> APIRouter:
    """The routes, under the router that checks the backup scope."""
    api = APIRouter()

    def save(fields: JobFields, current: str | None) -> dict[str, Any]:
        s = svc()
        base = s.jobs.get(current) if current is not None else None
        data = (base.model_dump() if base else {}) | fields.model_dump(exclude_unset=True)
        job, _ = check_job(data, s, base=base)
        if current is None:
            s.jobs.add(job)
        else:
            if live.running(current):
                raise Conflict(f"job {current} is running; change it when the run ends")
            s.jobs.replace(current, job)
        return job_view(s, job.name)

    @api.get("/jobs/{name}")
    def get_job(name: str) -> dict[str, Any]:
        """One job's fields."""
        return job_view(svc(), name)

    @api.post("/jobs", status_code=201)
    async def add_job(request: Request, caller: Caller = Depends(scope)) -> dict[str, Any]:  # noqa: B008
        """Add a job (admin): checked as ``backup init`` checks it."""
        require_manager(caller)
        fields = await read_model(request, JobFields)
        result: dict[str, Any] = await anyio.to_thread.run_sync(save, fields, None)
        return result

    @api.put("/jobs/{name}")
    async def edit_job(
        name: str,
        request: Request,
        caller: Caller = Depends(scope),  # noqa: B008
    ) -> dict[str, Any]:
        """Change a job (admin), possibly its name; its runs keep the name they ran under."""
        require_manager(caller)
        fields = await read_model(request, JobFields)
        result: dict[str, Any] = await anyio.to_thread.run_sync(save, fields, name)
        return result

    @api.delete("/jobs/{name}")
    def delete_job(name: str, caller: Caller = Depends(scope)) -> dict[str, str]:  # noqa: B008
        """Delete a job (admin); its backup and its history stay."""
        require_manager(caller)
        if live.running(name):
            raise Conflict(f"job {name} is running; delete it when the run ends")
        svc().jobs.remove(name)
        return {"deleted": name}

    @api.get("/progress")
    def progress() -> dict[str, Any]:
        """The jobs this server is running now, with their newest progress."""
        return {"running": live.snapshot()}

    @api.get("/jobs/{name}/snapshots")
    def list_snapshots(name: str) -> dict[str, Any]:
        """What can be browsed: the snapshots, newest first, or [""] for a mirror."""
        s = svc()
        job = s.jobs.get(name)
        return {"job": name, "method": job.method, "snapshots": browse.snapshots(job, s.config)}

    @api.get("/jobs/{name}/browse")
    def browse_folder(
        name: str,
        snapshot: str = Query("", max_length=100),
        path: str = Query("", max_length=browse.MAX_PATH),
    ) -> dict[str, Any]:
        """One folder of the mirror or a snapshot (folders first, at most 2000 entries)."""
        s = svc()
        return browse.listing(s.jobs.get(name), s.config, snapshot, path)

    @api.post("/jobs/{name}/restore")
    async def restore(
        name: str,
        request: Request,
        caller: Caller = Depends(scope),  # noqa: B008
    ) -> dict[str, str]:
        """Copy one file or folder of a backup into a folder (admin); never over the source
        unless ``into_source``, never over an existing item unless ``overwrite``."""
        require_manager(caller)
        asked = await read_model(request, RestoreRequest)
        s = svc()

        def work() -> str:
            written = browse.restore_item(
                s.jobs.get(name),
                s.config,
                s.roots,
                snapshot=asked.snapshot,
                path=asked.path,
                dest=asked.dest,
                overwrite=asked.overwrite,
                into_source=asked.into_source,
            )
            return str(written)

        return {"job": name, "restored": await anyio.to_thread.run_sync(work)}

    return api
