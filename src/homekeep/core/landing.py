"""The landing page: a card for each area the caller may use, with the area's live summary."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from homekeep.core.accounts import Caller
from homekeep.core.area import Area, Summary, WebParts
from homekeep.core.auth import require_page
from homekeep.core.forms import page

log = logging.getLogger(__name__)

SUMMARY_SECONDS = 3.0  # a slow area shows "unavailable" rather than holding the page


@dataclass(frozen=True)
class Card:
    """One area on the landing page."""

    area: Area
    page: bool
    api: bool
    summary: Summary
    error: str = ""


async def _card(area: Area, parts: WebParts, caller: Caller) -> Card:
    def card(summary: Summary, error: str = "") -> Card:
        return Card(area, parts.pages is not None, parts.api is not None, summary, error)

    if parts.summary is None:
        return card({})
    try:
        return card(await asyncio.wait_for(parts.summary(caller), SUMMARY_SECONDS))
    except TimeoutError:
        log.warning("the %s summary took over %.0f s", area.name, SUMMARY_SECONDS)
        return card({}, "summary unavailable: it took too long")
    except Exception:
        log.exception("the %s summary failed", area.name)
        return card({}, "summary unavailable: see the server log")


def router(
    templates: Jinja2Templates, mounted: Sequence[tuple[Area, WebParts]], version: str
) -> APIRouter:
    """The route ``/``."""
    routes = APIRouter(include_in_schema=False)

    @routes.get("/")
    async def landing(request: Request, caller: Caller = Depends(require_page(None))) -> Response:  # noqa: B008
        mine = [(area, parts) for area, parts in mounted if caller.allows(area.name)]
        cards = await asyncio.gather(*(_card(area, parts, caller) for area, parts in mine))
        return page(templates, request, "landing.html", {"cards": cards, "version": version})

    return routes
