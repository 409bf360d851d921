"""The customer's app: menu, basket and checkout, wallet, orders with their live status, letters.

Every page is one or two calls of the gateway's public API with the session's token. Forms that
create or move money or an order carry an Idempotency-Key made when the form was drawn, so a second
click or a resent form is the same request to the API: one order, one charge.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse

from sandwich.services.web.gateway_client import Answer, GatewayDown
from sandwich.services.web.i18n import roubles_to_kopecks
from sandwich.services.web.page import SECURITY_HEADERS, Page, integer, number, page_of, safe_id

router = APIRouter(include_in_schema=False)
PageDep = Annotated[Page, Depends(page_of)]

# Moscow delivery presets for the demo city (no map tiles from the internet).
DELIVERY_POINTS: tuple[tuple[str, str, float, float], ...] = (
    ("kremlin", "Red Square, 1", 55.7539, 37.6208),
    ("arbat", "Arbat Street, 10", 55.7520, 37.5929),
    ("kitay", "Ilyinka Street, 4", 55.7567, 37.6269),
    ("zamoskvorechye", "Pyatnitskaya Street, 20", 55.7433, 37.6286),
)
CANCELLABLE = frozenset({"created", "paid", "assigned"})
PLACED_WAITS, PLACED_WAIT_SECONDS = 15, 0.2


def _sign_in_first(page: Page) -> Response | None:
    return None if page.session is not None else page.redirect("/signin")


@router.get("/menu")
async def menu(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    answer = await page.api("GET", "/api/v1/menu")
    return page.render("menu.html", items=answer.items, added=page.request.query_params.get("added"))


@router.post("/basket/add")
async def add_to_basket(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    item_id = page.form.get("menu_item_id", "")
    basket = await page.api("GET", "/api/v1/basket")
    current = {line["menu_item_id"]: line["quantity"] for line in basket.items}
    answer = await page.api(
        "PUT",
        f"/api/v1/basket/items/{item_id}",
        json={"quantity": current.get(item_id, 0) + 1},
    )
    if not answer.ok:
        return await _menu_with_error(page, answer)
    return page.redirect(f"/menu?added={item_id}")


async def _menu_with_error(page: Page, error: Answer) -> Response:
    answer = await page.api("GET", "/api/v1/menu")
    return page.render("menu.html", status=error.status, items=answer.items, error=error)


async def _basket_page(page: Page, status: int = 200, **values: Any) -> Response:
    basket = await page.api("GET", "/api/v1/basket")
    menu_answer = await page.api("GET", "/api/v1/menu")
    names = {item["id"]: item for item in menu_answer.items}
    lines = [
        {**line, "name": names.get(line["menu_item_id"], {}).get("name", line["menu_item_id"]),
         "price": names.get(line["menu_item_id"], {}).get("price", 0)}
        for line in basket.items
    ]  # fmt: skip
    return page.render(
        "basket.html",
        status=status,
        lines=lines,
        total=(basket.body or {}).get("total", 0),
        points=DELIVERY_POINTS,
        **values,
    )


@router.get("/basket")
async def basket(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    return await _basket_page(page)


@router.post("/basket/line")
async def change_line(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    item_id = page.form.get("menu_item_id", "")
    quantity = 0 if "remove" in page.form else integer(page.form.get("quantity"))
    answer = await page.api(
        "PUT",
        f"/api/v1/basket/items/{item_id}",
        json={"quantity": quantity},
    )
    if not answer.ok:
        return await _basket_page(page, status=answer.status, line_error=answer, line_id=item_id)
    return page.redirect("/basket")


@router.post("/order")
async def place_order(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    form = page.form
    delivery = {
        "address": form.get("address", ""),
        "lat": number(form.get("lat")),
        "lon": number(form.get("lon")),
    }
    answer = await page.api(
        "POST",
        "/api/v1/order",
        json={"delivery": delivery},
        idempotency_key=form.get("idempotency_key") or None,
    )
    if not answer.ok:
        return await _basket_page(page, status=answer.status, order_error=answer, delivery=delivery)
    order = answer.body
    if order.get("status") == "payment_failed":
        failed = Answer(402, {"error": {"code": "payment_failed", "message": page.words["not_enough_money"]}})
        return await _basket_page(page, status=200, order_error=failed, delivery=delivery, failed_order=order)
    return page.redirect(f"/orders/{order['order_id']}?placed=1")


@router.get("/wallet")
async def wallet(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    return await _wallet_page(page)


async def _wallet_page(page: Page, status: int = 200, **values: Any) -> Response:
    account = await page.api("GET", "/api/v1/billing/account")
    operations = await page.api("GET", "/api/v1/billing/account/operations")
    return page.render(
        "wallet.html",
        status=status,
        balance=(account.body or {}).get("balance", 0),
        operations=operations.items,
        **values,
    )


@router.post("/wallet/top-up")
async def top_up(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    typed = page.form.get("amount", "")
    kopecks = roubles_to_kopecks(typed)
    answer = await page.api(
        "POST",
        "/api/v1/billing/account/deposit",
        json={"amount": kopecks if kopecks is not None else typed},
        idempotency_key=page.form.get("idempotency_key") or None,
    )
    if not answer.ok:
        return await _wallet_page(page, status=answer.status, error=answer, amount=typed)
    return page.redirect("/wallet")


@router.get("/orders")
async def orders(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    answer = await page.api("GET", "/api/v1/orders")
    return page.render("orders.html", orders=answer.items)


@router.get("/orders/{order_id}")
async def order(order_id: str, page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    return await _order_page(page, order_id)


async def _order_page(page: Page, order_id: str, status: int = 200, **values: Any) -> Response:
    path = f"/api/v1/orders/{safe_id(order_id)}"
    answer = await page.api("GET", path)
    # Just placed in the async flow (202): the orders service may take a moment to take the request.
    waits = PLACED_WAITS if page.request.query_params.get("placed") else 0
    while answer.status == 404 and waits > 0:
        await asyncio.sleep(PLACED_WAIT_SECONDS)
        waits -= 1
        answer = await page.api("GET", path)
    if not answer.ok:
        return page.render("not_found.html", status=404)
    return page.render("order.html", status=status, order=answer.body, cancellable=CANCELLABLE, **values)


@router.post("/orders/{order_id}/cancel")
async def cancel(order_id: str, page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    answer = await page.api("POST", f"/api/v1/orders/{safe_id(order_id)}/cancel")
    if not answer.ok:
        return await _order_page(page, order_id, status=answer.status, error=answer)
    return page.redirect(f"/orders/{order_id}")


@router.get("/orders/{order_id}/events")
async def order_events(order_id: str, page: PageDep) -> Response:
    """The gateway's event stream of the order, passed through to the page's EventSource."""
    if page.session is None:
        return Response(status_code=401, headers=SECURITY_HEADERS)
    token = page.session.token
    last_event_id = page.request.headers.get("last-event-id")
    path = f"/api/v1/orders/{safe_id(order_id)}/events"

    async def relay() -> AsyncIterator[bytes]:
        try:
            async with page.gateway.stream(path, token=token, last_event_id=last_event_id) as upstream:
                if upstream.status != 200:
                    return
                async for chunk in upstream.content.iter_any():
                    yield chunk
        except GatewayDown:
            yield b"retry: 2000\n\n"

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)


@router.get("/letters")
async def letters(page: PageDep) -> Response:
    if (refused := _sign_in_first(page)) is not None:
        return refused
    answer = await page.api("GET", "/api/v1/notifications")
    return page.render("letters.html", letters=answer.items)
