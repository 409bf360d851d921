"""The cook's and the courier's apps: the food point's queue with `Mark ready`; the ready orders
nearest first with `Take`, and the courier's own deliveries with `Delivered`. Both lists follow the
platform live: the page's script reloads the list every 2 seconds (`?fragment=1` draws the list
alone), so a new order appears without anyone reloading the page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from sandwich.services.web.page import Page, page_of, safe_id

router = APIRouter(include_in_schema=False)
PageDep = Annotated[Page, Depends(page_of)]

DEFAULT_POSITION = (55.7558, 37.6173)  # the demo city's centre


def _allowed(page: Page, role: str) -> Response | None:
    if page.session is None:
        return page.redirect("/signin")
    if role not in page.session.roles and "admin" not in page.session.roles:
        return page.render("not_found.html", status=404)
    return None


@router.get("/kitchen")
async def kitchen(page: PageDep) -> Response:
    if (refused := _allowed(page, "cook")) is not None:
        return refused
    return await _kitchen_page(page)


async def _kitchen_page(page: Page, status: int = 200, **values: Any) -> Response:
    answer = await page.api("GET", "/api/v1/kitchen/orders")
    template = "kitchen_list.html" if page.request.query_params.get("fragment") else "kitchen.html"
    return page.render(template, status=status, orders=answer.items, **values)


@router.post("/kitchen/{order_id}/ready")
async def mark_ready(order_id: str, page: PageDep) -> Response:
    return await _act(
        page, "cook", f"/api/v1/kitchen/orders/{safe_id(order_id)}/ready", _kitchen_page, "/kitchen"
    )


def _position(page: Page) -> tuple[str, str]:
    lat = page.request.query_params.get("lat") or str(DEFAULT_POSITION[0])
    lon = page.request.query_params.get("lon") or str(DEFAULT_POSITION[1])
    return lat, lon


@router.get("/courier")
async def courier(page: PageDep) -> Response:
    if (refused := _allowed(page, "courier")) is not None:
        return refused
    return await _courier_page(page)


async def _courier_page(page: Page, status: int = 200, **values: Any) -> Response:
    lat, lon = _position(page)
    ready = await page.api("GET", "/api/v1/delivery/orders", params={"lat": lat, "lon": lon})
    mine = await page.api("GET", "/api/v1/delivery/mine")
    taken = mine.items
    template = "courier_list.html" if page.request.query_params.get("fragment") else "courier.html"
    return page.render(
        template,
        status=status,
        ready=ready.items,
        taken=taken,
        lat=lat,
        lon=lon,
        **values,
    )


@router.post("/courier/{order_id}/take")
async def take(order_id: str, page: PageDep) -> Response:
    path = f"/api/v1/delivery/orders/{safe_id(order_id)}/take"
    return await _act(page, "courier", path, _courier_page, "/courier")


@router.post("/courier/{order_id}/delivered")
async def delivered(order_id: str, page: PageDep) -> Response:
    path = f"/api/v1/delivery/orders/{safe_id(order_id)}/complete"
    return await _act(page, "courier", path, _courier_page, "/courier")


async def _act(
    page: Page, role: str, path: str, redraw: Callable[..., Awaitable[Response]], back: str
) -> Response:
    """One button of the cook's or the courier's app: the API's action, then the list again; what
    the API refuses is drawn beside the list."""
    if (refused := _allowed(page, role)) is not None:
        return refused
    answer = await page.api("POST", path)
    if not answer.ok:
        return await redraw(page, status=answer.status, error=answer)
    return page.redirect(back)
