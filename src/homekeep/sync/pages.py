"""The /sync/ page and the JSON it reads under /api/sync/: folders, devices, transfers,
history, conflicts and versions.

Every route takes a logged-in session (or a token) that may use the sync area, and
shows only the folders its caller may act as (``Caller.acts_for``: an admin all of
them, a user the folder of their own name, a token its bound clients). Resolving a
conflict and restoring a version change the server's copy of a shared folder under the
folder's lock, then rescan it, which sends the result to the clients at their next look.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homekeep.core.auth import Caller, require_scope
from homekeep.core.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMedia,
)
from homekeep.core.web import templates
from homekeep.sync import conflicts, versions
from homekeep.sync.server.sharing import Sharing
from homekeep.sync.server.target import Target
from homekeep.sync.server.transfers import live
from homekeep.sync.wire.folder import VERSIONS
from homekeep.sync.wire.protocol import check_client, check_path

ONLINE_SECONDS = 60  # a watching client asks every 8 s: several missed calls is offline
ACTIONS = ("create", "modify", "edit", "delete", "rename", "mkdir", "meta", "link", "dir")
MAX_CONFLICTS = 500
MAX_VERSIONS = 500
MAX_CONTACTS = 1000
MAX_TEXT = 1024  # characters of a path filter
MAX_BODY = 16 << 10  # bytes of an action's JSON body: a name or two
TEMPLATES = Path(__file__).parent / "templates"

_CALLER = require_scope("sync")  # one object: FastAPI checks it once per request
Who = Annotated[Caller, Depends(_CALLER)]
FolderName = Annotated[str, Field(min_length=1, max_length=64)]


class Resolve(BaseModel):
    """Which version of a conflicted file to keep: the file as it is, or the copy."""

    model_config = ConfigDict(extra="forbid", strict=True)
    copy_path: str = Field(alias="copy", min_length=1, max_length=4096)
    keep: Literal["file", "copy"]


class Restore(BaseModel):
    """A kept version to put back, as ``GET .../versions`` names it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    version: str = Field(min_length=1, max_length=4096)


M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, model: type[M]) -> M:
    """An action's JSON body as ``model``: read within MAX_BODY bytes, then checked."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMedia("send the body as application/json")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes; it names one file")
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem.get("loc", ())) or "body"
        raise InvalidInput(f"{where}: {problem.get('msg', 'invalid')}") from None


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads ``model`` itself (read_json)."""
    schema = model.model_json_schema(by_alias=True)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _stamp(value: str | None, name: str) -> str | None:
    """An ISO 8601 time (with a zone, else UTC) as the history stores times, or None."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be an ISO 8601 time, e.g. 2026-01-31T18:00Z") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def check_version(version: str) -> str:
    """A kept version's name: ``.homekeep-versions/`` then a path that stays inside it."""
    head, _, rest = version.partition("/")
    if head != VERSIONS or not rest:
        raise InvalidInput(f"{version[:200]!r} is not in {VERSIONS}/; the versions list names them")
    check_path(rest)
    return version


class Pages:
    """The page's reads and the two actions, over one target folder; any thread may call."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.index = target.index
        self.sharing = Sharing(target)
        self.live = live(target)

    # -- who may see what ------------------------------------------------------------------

    def visible(self, caller: Caller) -> list[str]:
        """The folders (shared ones and clients') ``caller`` may act as."""
        return [name for name in sorted(self.index.clients()) if caller.acts_for(name)]

    def folder(self, caller: Caller, name: str, *, shared: bool = False) -> Path:
        """The directory of a folder ``caller`` may act as (404 if not shared, when asked)."""
        check_client(name)
        if not caller.acts_for(name):
            raise Forbidden(f"{caller.kind} {caller.name!r} may not see folder {name!r}")
        if name not in self.index.clients():
            raise NotFound(f"no folder named {name!r} on this server")
        if shared and not self.index.is_shared(name):
            raise NotFound(f"{name!r} is not a shared folder; `homekeep sync share` makes one")
        return self.target.client_dir(name)

    # -- reads -----------------------------------------------------------------------------

    def overview(self, caller: Caller) -> dict[str, Any]:
        """Every visible folder with its counts and the devices that call for it."""
        names = set(self.visible(caller))
        devices: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        fresh = self.live.contacts.latest()
        now = datetime.now(UTC)
        for row in self.index.contacts(MAX_CONTACTS):
            if row["folder"] not in names:
                continue
            key = (row["folder"], row["device"], row["address"])
            last = max(str(row["last_at"]), fresh.pop(key, ""))
            devices[row["folder"]].append(_device(row["device"], row["address"], last, now))
        for (folder, device, address), last in fresh.items():  # not written yet
            if folder in names:
                devices[folder].append(_device(device, address, last, now))
        folders = []
        for row in self.index.folder_counts():
            if row["name"] not in names:
                continue
            seen = sorted(devices[row["name"]], key=lambda d: d["last_contact"], reverse=True)
            folders.append(
                {
                    "name": row["name"],
                    "shared": bool(row["shared"]),
                    "files": row["files"],
                    "bytes": row["bytes"],
                    "last_change": row["last_change"],
                    "clients": seen,
                }
            )
        return {"folders": folders, "online_seconds": ONLINE_SECONDS, "now": _iso(now)}

    def transfers(self, caller: Caller) -> dict[str, Any]:
        found, count = self.live.transfers.current(set(self.visible(caller)))
        return {"transfers": found, "count": count}

    def history(
        self,
        caller: Caller,
        *,
        folder: str | None,
        action: str | None,
        path: str | None,
        since: str | None,
        until: str | None,
        before: int | None,
        limit: int,
    ) -> dict[str, Any]:
        """Events of the visible folders, newest first, filtered; ``next_before`` pages on."""
        where: list[tuple[str, tuple[Any, ...]]] = []
        if folder:
            self.folder(caller, folder)
            where.append(("client = ?", (folder,)))
        else:
            every = self.index.clients()
            mine = [n for n in every if caller.acts_for(n)]
            if len(mine) < len(every):  # a home server has a few folders: one IN list
                where.append((f"client IN ({','.join('?' * len(mine)) or 'NULL'})", tuple(mine)))
        if action:
            if action not in ACTIONS:
                raise InvalidInput(f"action must be one of: {', '.join(ACTIONS)}")
            where.append(("action = ?", (action,)))
        if path:
            if "\x00" in path:
                raise InvalidInput("the path filter contains a NUL byte")
            where.append(("instr(path, ?) > 0 OR instr(COALESCE(dest, ''), ?) > 0", (path, path)))
        start, end = _stamp(since, "since"), _stamp(until, "until")
        if start is not None:
            where.append(("at >= ?", (start,)))
        if end is not None:
            where.append(("at < ?", (end,)))
        rows = self.index.history(where, before, limit + 1)
        events = [dict(r) for r in rows[:limit]]
        more = len(rows) > limit
        return {"events": events, "next_before": events[-1]["id"] if more else None}

    def conflicts(self, caller: Caller, name: str) -> dict[str, Any]:
        """The open conflicts of a shared folder: each file with its conflict copies."""
        self.folder(caller, name, shared=True)
        copies = [
            p
            for p in self.index.files_like(name, ".sync-conflict-", MAX_CONFLICTS + 1)
            if conflicts.is_conflict_copy(p)
        ]
        found = []
        for copy in copies[:MAX_CONFLICTS]:
            path = conflicts.original_of(copy)
            found.append(
                {
                    "path": path,
                    "copy": copy,
                    "file": _file(self.index.entry(name, path)),
                    "copy_file": _file(self.index.entry(name, copy)),
                }
            )
        return {"conflicts": found, "truncated": len(copies) > MAX_CONFLICTS}

    def versions(self, caller: Caller, name: str, under: str | None) -> dict[str, Any]:
        """The kept versions of a shared folder (of paths at or under ``under``), newest first."""
        root = self.folder(caller, name, shared=True)
        if under:
            check_path(under.rstrip("/"))
        if not _real_dir(root / VERSIONS):
            return {"versions": [], "truncated": False}
        kept = versions.listing(root, (under or "").rstrip("/"))
        shown = [
            {
                "path": k.path,
                "version": k.version,
                "replaced_at": _iso(k.replaced_at),
                "size": k.size,
            }
            for k in kept[:MAX_VERSIONS]
        ]
        return {"versions": shown, "truncated": len(kept) > MAX_VERSIONS}

    # -- actions ---------------------------------------------------------------------------

    def resolve(self, caller: Caller, name: str, asked: Resolve) -> dict[str, Any]:
        """Keep one version of a conflicted file; the other goes to the versions folder."""
        root = self.folder(caller, name, shared=True)
        copy = check_path(asked.copy_path)
        if not conflicts.is_conflict_copy(copy):
            raise InvalidInput(f"{copy!r} is not a conflict copy's name")
        self.sharing.check_mounted(name)
        with self.target.lock(name):  # no client batch places files in it meanwhile
            if asked.keep == "copy":
                path = conflicts.resolve(root, keep=copy)
            else:
                path = conflicts.resolve(root, drop=copy)
        self.sharing.rescan(name)
        return {"path": path, "copy": copy, "kept": asked.keep}

    def restore(self, caller: Caller, name: str, asked: Restore) -> dict[str, Any]:
        """Put a kept version back at its path (what is there now is kept first)."""
        root = self.folder(caller, name, shared=True)
        version = check_version(asked.version)
        if not _real_dir(root / VERSIONS):
            raise NotFound(f"no kept version {version!r}; the versions list names them")
        self.sharing.check_mounted(name)
        with self.target.lock(name):
            path = versions.restore(root, version)
        self.sharing.rescan(name)
        return {"path": path, "version": version}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _real_dir(path: Path) -> bool:
    """A folder, not a link to one (the versions folder never leads elsewhere)."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _file(row: Any) -> dict[str, Any] | None:
    """What the page shows of a file's version: its size and time."""
    if row is None:
        return None
    modified = datetime.fromtimestamp(row["mtime_ns"] / 1e9, UTC)
    return {"size": row["size"], "modified_at": _iso(modified)}


def _device(device: str, address: str, last: str, now: datetime) -> dict[str, Any]:
    try:
        age = now - datetime.fromisoformat(last)
    except ValueError:
        age = timedelta.max
    return {
        "device": device,
        "address": address,
        "last_contact": last,
        "online": age <= timedelta(seconds=ONLINE_SECONDS),
    }


def api_router(pages: Pages) -> APIRouter:
    """The page's JSON, relative to /api/sync."""
    api = APIRouter(dependencies=[Depends(_CALLER)])

    async def run(fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    @api.get("/overview")
    async def overview(caller: Who) -> dict[str, Any]:
        """The folders, each with its files, size, last change and devices (online or not)."""
        return await run(pages.overview, caller)  # type: ignore[no-any-return]

    @api.get("/transfers")
    async def transfers(caller: Who) -> dict[str, Any]:
        """What is being received right now, with the bytes so far."""
        return await run(pages.transfers, caller)  # type: ignore[no-any-return]

    @api.get("/history")
    async def history(
        caller: Who,
        folder: Annotated[str | None, Query(max_length=64)] = None,
        action: Annotated[str | None, Query(max_length=16)] = None,
        path: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
        before: Annotated[int | None, Query(ge=1, le=1 << 62)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """The history, newest first: by folder, action, path substring and time range."""
        return await run(  # type: ignore[no-any-return]
            lambda: pages.history(
                caller,
                folder=folder,
                action=action,
                path=path,
                since=since,
                until=until,
                before=before,
                limit=limit,
            )
        )

    @api.get("/folders/{folder}/conflicts")
    async def folder_conflicts(folder: str, caller: Who) -> dict[str, Any]:
        """The open conflicts of a shared folder."""
        return await run(pages.conflicts, caller, folder)  # type: ignore[no-any-return]

    @api.post("/folders/{folder}/conflicts/resolve", openapi_extra=_body_doc(Resolve))
    async def resolve(folder: str, request: Request, caller: Who) -> dict[str, Any]:
        """Keep the file's version (``keep: file``) or the conflict copy's (``keep: copy``)."""
        asked = await read_json(request, Resolve)
        return await run(pages.resolve, caller, folder, asked)  # type: ignore[no-any-return]

    @api.get("/folders/{folder}/versions")
    async def folder_versions(
        folder: str,
        caller: Who,
        under: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> dict[str, Any]:
        """The kept versions of a shared folder, newest first."""
        return await run(pages.versions, caller, folder, under)  # type: ignore[no-any-return]

    @api.post("/folders/{folder}/versions/restore", openapi_extra=_body_doc(Restore))
    async def restore(folder: str, request: Request, caller: Who) -> dict[str, Any]:
        """Put a kept version back (what is there now is kept as a version first)."""
        asked = await read_json(request, Restore)
        return await run(pages.restore, caller, folder, asked)  # type: ignore[no-any-return]

    return api


def page_router(*, on: bool) -> APIRouter:
    """The /sync/ page; with the server off (no [sync] root), a page that says so."""
    pages = APIRouter()
    page_templates = templates(TEMPLATES)

    @pages.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        """The page; its data comes from the API with the session."""
        context = {"on": on, "online_seconds": ONLINE_SECONDS, "actions": ACTIONS}
        return page_templates.TemplateResponse(request, "sync.html", context)

    return pages
