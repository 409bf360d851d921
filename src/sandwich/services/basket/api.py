"""Routes of basket: the customer's basket (read, set an item's quantity) and the lines orders reads
when an order is placed without items.

Order events reach the consumer registered in app.py: from the broker, or in the sync flow pushed to
the platform's `POST /internal/v1/events/order.events` (platform/app.py, `events_router`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from sandwich.platform.app import Service, service_of
from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.services.basket import storage
from sandwich.services.basket.domain import (
    MAX_QUANTITY,
    BasketFull,
    MenuEntry,
    canonical_id,
    changes,
    priced_basket,
    set_quantity,
)
from sandwich.services.basket.ports import MenuCatalog, MenuUnavailable

log = structlog.get_logger("basket")

router = APIRouter(tags=["basket"])


class BasketItemOut(BaseModel):
    menu_item_id: str
    quantity: int
    name: str | None = None
    price: int | None = None


class BasketOut(BaseModel):
    items: list[BasketItemOut]
    total: int | None = Field(
        description="Sum of price x quantity in minor units; null when prices are unavailable."
    )
    prices_unavailable: bool = Field(
        default=False, description="True when the menu could not be asked: items show without prices."
    )


class QuantityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: int = Field(ge=0, le=MAX_QUANTITY, strict=True, description="0 removes the item.")


class BasketLineOut(BaseModel):
    menu_item_id: str
    quantity: int


class BasketLinesOut(BaseModel):
    items: list[BasketLineOut]


def catalog_of(service: Service) -> MenuCatalog:
    catalog: MenuCatalog = service.state["menu"]
    return catalog


def _user_uuid(identity: Identity) -> uuid.UUID | None:
    try:
        return uuid.UUID(identity.user_id)
    except ValueError:
        return None


def _unknown_item() -> ApiError:
    return ApiError(404, "unknown_menu_item", "There is no such item on the menu.")


async def _priced(
    service: Service, lines: list[tuple[str, int]], known: dict[str, MenuEntry] | None = None
) -> dict[str, Any]:
    """The basket priced from the menu, asking it only for items not in `known`; without prices if it is away."""
    menu = dict(known or {})
    missing = [item for item, _ in lines if item not in menu]
    if missing:
        try:
            menu.update(await catalog_of(service).lookup(missing))
        except MenuUnavailable as exc:
            log.warning("menu_unavailable_for_basket", error=str(exc))
            return priced_basket(lines, None)
    return priced_basket(lines, menu)


@router.get("/api/v1/basket", response_model=BasketOut)
async def my_basket(
    identity: Annotated[Identity, Depends(current_identity)], service: Annotated[Service, Depends(service_of)]
) -> JsonResponse:
    """The caller's basket with names, prices and total from the menu (200 without prices if menu is away)."""
    user_id = _user_uuid(identity)
    if user_id is None:
        return JsonResponse(priced_basket([], {}))
    async with service.database.connect() as conn:
        lines = await storage.lines_of(conn, user_id)
    return JsonResponse(await _priced(service, lines))


@router.put("/api/v1/basket/items/{menu_item_id}", response_model=BasketOut)
async def set_item_quantity(
    menu_item_id: str,
    body: QuantityIn,
    identity: Annotated[Identity, Depends(current_identity)],
    service: Annotated[Service, Depends(service_of)],
) -> JsonResponse:
    """Set how many of a menu item the basket holds (0 removes it); answers the whole basket.

    Adding needs the item to be on the menu (404 `unknown_menu_item`; 503 when menu cannot be asked);
    removing never asks the menu, so an item that left the menu can still be taken out.
    """
    item_id = canonical_id(menu_item_id)
    if item_id is None:
        raise _unknown_item()
    user_id = _user_uuid(identity)
    if user_id is None:
        raise ApiError(422, "invalid_user_id", "The caller's user id is not a UUID.")
    known: dict[str, MenuEntry] | None = None
    if body.quantity > 0:
        async with service.database.connect() as conn:
            current = await storage.lines_of(conn, user_id)
        try:
            # One lookup checks the item and prices the rest of the basket for the answer.
            known = await catalog_of(service).lookup([item_id, *(item for item, _ in current)])
        except MenuUnavailable as exc:
            raise ApiError(
                503, "service_unavailable", "The menu cannot be asked right now, try again shortly."
            ) from exc
        if item_id not in known:
            raise _unknown_item()
    async with service.database.begin() as conn:
        await storage.lock_basket(conn, user_id)
        before = dict(await storage.lines_of(conn, user_id))
        try:
            after = set_quantity(before, item_id, body.quantity)
        except BasketFull as exc:
            raise ApiError(409, "basket_full", f"The basket is full: {exc}.") from exc
        await storage.write_changes(conn, user_id, changes(before, after))
        lines = await storage.lines_of(conn, user_id)
    return JsonResponse(await _priced(service, lines, known))


@router.get("/internal/v1/baskets/{user_id}", response_model=BasketLinesOut, include_in_schema=False)
async def basket_lines(user_id: str, service: Annotated[Service, Depends(service_of)]) -> JsonResponse:
    """The lines of a user's basket for orders (an order placed without items orders the basket)."""
    try:
        user_uuid = uuid.UUID(user_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_user_id", "Not a user id.") from exc
    async with service.database.connect() as conn:
        lines = await storage.lines_of(conn, user_uuid)
    return JsonResponse({"items": [{"menu_item_id": item, "quantity": quantity} for item, quantity in lines]})
