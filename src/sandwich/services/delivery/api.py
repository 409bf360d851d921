"""Routes of delivery: couriers list the ready orders, take one and complete it.

Order events reach the consumer registered in app.py: from the broker, or in the sync flow pushed to
the platform's `POST /internal/v1/events/order.events` (platform/app.py, `events_router`).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from sandwich.platform.contract import OrderOut
from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity, identity_of, require_role
from sandwich.platform.responses import JsonResponse
from sandwich.services.delivery.commands import (
    CompleteOrder,
    TakeOrder,
    complete_order,
    list_offers,
    list_own,
    take_order,
)
from sandwich.services.delivery.context import DeliveryContext, context_of
from sandwich.services.delivery.domain import (
    DeliveryRefused,
    InvalidPosition,
    NotYourDelivery,
    OrderNotFound,
    parse_order_id,
    parse_position,
    public_offer,
)
from sandwich.services.delivery.ports import OrdersUnavailable

router = APIRouter(tags=["delivery"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PickupOut(BaseModel):
    lat: float | None
    lon: float | None
    address: str | None = None


class PlaceOut(BaseModel):
    address: str
    lat: float
    lon: float


class OrderItemOut(BaseModel):
    menu_item_id: str
    name: str
    quantity: int
    price: int


class OfferOut(BaseModel):
    order_id: str
    status: str
    food_point_id: str | None
    pickup: PickupOut
    delivery: PlaceOut
    items: list[OrderItemOut]
    total: int
    distance_km: float | None = None


class OffersOut(BaseModel):
    items: list[OfferOut]


async def courier_identity(request: Request) -> Identity:
    """FastAPI dependency: the caller, who must be a courier (401 without identity, 403 without the role)."""
    identity = identity_of(request)
    require_role(identity, "courier")
    return identity


def _order_id(raw: str) -> uuid.UUID:
    order_id = parse_order_id(raw)
    if order_id is None:
        raise ApiError(404, "order_not_found", "No such order.")
    return order_id


def _api_error(exc: DeliveryRefused | OrdersUnavailable) -> ApiError:
    """A refusal as the contract's answer: 404 and 403 for their kinds, 409 for every other
    refusal (its code and message kept), 503 when orders cannot be reached."""
    if isinstance(exc, OrdersUnavailable):
        return ApiError(503, "service_unavailable", "orders cannot be reached right now, try again.")
    status = 404 if isinstance(exc, OrderNotFound) else 403 if isinstance(exc, NotYourDelivery) else 409
    return ApiError(status, exc.code, exc.message)


@router.get("/api/v1/delivery/orders", response_model=OffersOut, response_model_exclude_unset=True)
async def offers(
    identity: Annotated[Identity, Depends(courier_identity)],
    ctx: Annotated[DeliveryContext, Depends(context_of)],
    lat: Annotated[str | None, Query(description="the courier's latitude (with lon)")] = None,
    lon: Annotated[str | None, Query(description="the courier's longitude (with lat)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JsonResponse:
    """Orders ready and not taken: nearest pickup point first when `?lat=&lon=` are given (with
    `distance_km`), else oldest first."""
    try:
        origin = parse_position(lat, lon)
    except InvalidPosition as exc:
        raise ApiError(422, "invalid_field", str(exc)) from exc
    offers = await list_offers(origin, limit, ctx.uow(), ctx.food_points)
    return JsonResponse({"items": [public_offer(o, with_distance=origin is not None) for o in offers]})


@router.get("/api/v1/delivery/mine", response_model=OffersOut, response_model_exclude_unset=True)
async def mine(
    identity: Annotated[Identity, Depends(courier_identity)],
    ctx: Annotated[DeliveryContext, Depends(context_of)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JsonResponse:
    """The calling courier's deliveries: the ones on the way (`in_delivery`) first, then the latest
    delivered (`completed`)."""
    own = await list_own(identity.username, limit, ctx.uow())
    return JsonResponse({"items": [public_offer(offer, with_distance=False) for offer in own]})


@router.post("/api/v1/delivery/orders/{order_id}/take", response_model=OrderOut)
async def take(
    order_id: str,
    identity: Annotated[Identity, Depends(courier_identity)],
    ctx: Annotated[DeliveryContext, Depends(context_of)],
) -> JsonResponse:
    """Take a ready order: exactly one courier wins; the others get 409 `already_taken`. Repeating
    the call as the courier who took it answers the order again."""
    command = TakeOrder(_order_id(order_id), identity.username)
    try:
        return JsonResponse(await take_order(command, ctx.uow(), ctx.orders))
    except (DeliveryRefused, OrdersUnavailable) as exc:
        raise _api_error(exc) from exc


@router.post("/api/v1/delivery/orders/{order_id}/complete", response_model=OrderOut)
async def complete(
    order_id: str,
    identity: Annotated[Identity, Depends(courier_identity)],
    ctx: Annotated[DeliveryContext, Depends(context_of)],
) -> JsonResponse:
    """Mark the courier's delivery done; 403 `not_your_delivery` unless this courier took it."""
    command = CompleteOrder(_order_id(order_id), identity.username)
    try:
        return JsonResponse(await complete_order(command, ctx.uow(), ctx.orders))
    except (DeliveryRefused, OrdersUnavailable) as exc:
        raise _api_error(exc) from exc
