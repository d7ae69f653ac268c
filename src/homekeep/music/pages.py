"""The web player page at /music/: one page, its views drawn by its script from the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from homekeep.core.web import templates


def pages_router() -> APIRouter:
    """The /music/ page (``homekeep serve`` mounts it behind the login)."""
    pages = APIRouter()
    page_templates = templates(Path(__file__).parent / "templates")

    @pages.get("/", response_class=HTMLResponse)
    def player(request: Request) -> HTMLResponse:
        """The player: albums, artists, tracks, search, playlists, reports, and the queue."""
        return page_templates.TemplateResponse(request, "music.html", {})

    return pages
