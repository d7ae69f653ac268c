"""Web: the /backup/ page and JSON under /api/backup/, every route behind the backup scope.

The page itself carries no data: it fetches the jobs, runs and chart with the session,
so sources, targets and rsync errors never reach a visitor without one. Changing jobs,
following runs and restoring are in ``job_routes``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from homekeep.backup import job_routes, plot, schedule
from homekeep.backup.live import LiveRuns
from homekeep.backup.plotcache import PlotCache, chart_key, etag
from homekeep.backup.service import Service, open_service
from homekeep.core.area import AreaContext, Summary, WebParts
from homekeep.core.auth import Caller, require_scope
from homekeep.core.errors import NotFound
from homekeep.core.web import templates


def build(ctx: AreaContext) -> WebParts:
    """The backup area's routes."""
    holder: dict[str, Service] = {}
    live = LiveRuns()
    guard = threading.Lock()

    def svc() -> Service:
        with guard:  # endpoints run on several worker threads
            if "svc" not in holder:
                holder["svc"] = open_service(ctx)
            return holder["svc"]

    def job_rows() -> list[dict[str, Any]]:
        s = svc()
        rows = []
        for job in s.jobs.all():
            last = s.backups.store.last(job.name)
            rows.append(
                {
                    "name": job.name,
                    "method": job.method,
                    "source": job.source,
                    "target": job.target,
                    "schedule": job.schedule_text,
                    "last_run": last.to_json() if last else None,
                }
            )
        return rows

    backup_scope = require_scope("backup")  # one object, so FastAPI checks once per request
    api = APIRouter(dependencies=[Depends(backup_scope)])
    charts = PlotCache(plot.render)
    api.include_router(job_routes.routes(svc, live, backup_scope))

    @api.get("/jobs")
    def list_jobs() -> list[dict[str, Any]]:
        """Every job with its schedule and last run."""
        return job_rows()

    @api.get("/jobs/{name}/runs")
    def job_runs(name: str, limit: int = Query(50, ge=1, le=10000)) -> list[dict[str, Any]]:
        """The runs of one job, oldest first."""
        s = svc()
        s.jobs.get(name)
        return [r.to_json() for r in s.backups.store.history(name, limit)]

    @api.post("/jobs/{name}/run", status_code=202)
    def run_job(
        name: str,
        token: Caller = Depends(backup_scope),  # noqa: B008
    ) -> dict[str, str]:
        """Start a run now (token with the backup scope); follow it in /jobs/{name}/runs."""
        s = svc()
        live.start(s, s.jobs.get(name), trigger=f"api:{token.name}")
        return {"job": name, "status": "started"}

    @api.get("/plot.png", response_class=Response)
    def growth_png(request: Request, job: str | None = None) -> Response:
        """The growth chart of one job, or of every job (cached until a run starts or ends)."""
        s = svc()
        names = [j.name for j in s.jobs.all()]
        if job is not None:
            if job not in names:
                raise NotFound(f"no backup job named {job!r}")
            names = [job]
        key = chart_key(s.backups.store, names)
        headers = {"ETag": etag(key), "Cache-Control": "private, no-cache"}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        data = charts.get(key, lambda: {n: s.backups.store.history(n) for n in names})
        return Response(data, media_type="image/png", headers=headers)

    pages = APIRouter()
    page_templates = templates(Path(__file__).parent / "templates")

    @pages.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        """The page; the data comes from the API with the session."""
        manage = job_routes.may_manage(request.state.caller)
        return page_templates.TemplateResponse(request, "backup.html", {"manage": manage})

    def job_summary() -> Summary:
        s, now = svc(), datetime.now(UTC)
        found: Summary = {}
        for job in s.jobs.all():
            last = s.backups.store.last(job.name)
            started = datetime.fromisoformat(last.started_at) if last else None
            due = schedule.first_due(job, started, now)
            ran = f"{last.started_at[:16]} {last.result}" if last else "never"
            found[job.name] = f"last {ran}; next " + (
                f"{due:%Y-%m-%d %H:%M}" if due else "on demand"
            )
        return found or {"jobs": "none yet"}

    async def summary(caller: Caller) -> Summary:
        return await anyio.to_thread.run_sync(job_summary)

    async def close() -> None:
        if "svc" in holder:
            holder.pop("svc").close()

    return WebParts(api=api, pages=pages, shutdown=[close], summary=summary)
