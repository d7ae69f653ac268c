"""Web: the /backup/ page (jobs, last runs, growth chart) and JSON under /api/backup/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from homekeep.backup.runner import human
from homekeep.backup.service import Service, open_service
from homekeep.core.area import AreaContext, WebParts
from homekeep.core.errors import NotFound
from homekeep.core.web import templates


def build(ctx: AreaContext) -> WebParts:
    """The backup area's routes."""
    holder: dict[str, Service] = {}

    def svc() -> Service:
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

    api = APIRouter()

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

    @api.get("/plot.png", response_class=Response)
    def growth_png(job: str | None = None) -> Response:
        """The growth chart of one job, or of every job."""
        from homekeep.backup import plot

        s = svc()
        names = [j.name for j in s.jobs.all()]
        if job is not None:
            if job not in names:
                raise NotFound(f"no backup job named {job!r}")
            names = [job]
        data = plot.render({n: s.backups.store.history(n) for n in names})
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    pages = APIRouter()
    page_templates = templates(Path(__file__).parent / "templates")

    @pages.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return page_templates.TemplateResponse(
            request, "backup.html", {"jobs": job_rows(), "human": human}
        )

    async def close() -> None:
        if "svc" in holder:
            holder.pop("svc").close()

    return WebParts(api=api, pages=pages, shutdown=[close])
