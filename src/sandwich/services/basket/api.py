"""Routes of basket: the customer's basket (read, set an item's quantity) and the lines orders reads
when an order is placed without items.

Order events reach the consumer registered in app.py: from the broker, or in the sync flow pushed to
the platform's `POST /internal/v1/events/order.events` (platform/app.py, `events_router`).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.services.basket import commands
from sandwich.services.basket.commands import SetQuantity, UnknownMenuItem
from sandwich.services.basket.context import BasketContext, context_of
from sandwich.services.basket.domain import MAX_QUANTITY, BasketFull, canonical_id, priced_basket
from sandwich.services.basket.ports import MenuUnavailable

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


Context = Annotated[BasketContext, Depends(context_of)]


def _user_uuid(identity: Identity) -> uuid.UUID | None:
    try:
        return uuid.UUID(identity.user_id)
    except ValueError:
        return None


def _unknown_item() -> ApiError:
    return ApiError(404, "unknown_menu_item", "There is no such item on the menu.")


@router.get("/api/v1/basket", response_model=BasketOut)
async def my_basket(
    identity: Annotated[Identity, Depends(current_identity)], context: Context
) -> JsonResponse:
    """The caller's basket with names, prices and total from the menu (200 without prices if menu is away)."""
    user_id = _user_uuid(identity)
    if user_id is None:
        return JsonResponse(priced_basket([], {}))
    return JsonResponse(await commands.read_basket(user_id, context.unit_of_work(), context.menu))


@router.put("/api/v1/basket/items/{menu_item_id}", response_model=BasketOut)
async def set_item_quantity(
    menu_item_id: str,
    body: QuantityIn,
    identity: Annotated[Identity, Depends(current_identity)],
    context: Context,
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
    command = SetQuantity(user_id, item_id, body.quantity)
    try:
        basket = await commands.set_item_quantity(command, context.unit_of_work(), context.menu)
    except UnknownMenuItem as exc:
        raise _unknown_item() from exc
    except MenuUnavailable as exc:
        raise ApiError(
            503, "service_unavailable", "The menu cannot be asked right now, try again shortly."
        ) from exc
    except BasketFull as exc:
        raise ApiError(409, "basket_full", f"The basket is full: {exc}.") from exc
    return JsonResponse(basket)


@router.get("/internal/v1/baskets/{user_id}", response_model=BasketLinesOut, include_in_schema=False)
async def basket_lines(user_id: str, context: Context) -> JsonResponse:
    """The lines of a user's basket for orders (an order placed without items orders the basket)."""
    try:
        user_uuid = uuid.UUID(user_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_user_id", "Not a user id.") from exc
    lines = await commands.basket_lines(user_uuid, context.unit_of_work())
    return JsonResponse({"items": [{"menu_item_id": item, "quantity": quantity} for item, quantity in lines]})
