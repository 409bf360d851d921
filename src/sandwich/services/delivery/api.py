"""Routes of delivery: couriers list the ready orders, take one and complete it; and the HTTP
ingestion of order events that the sync flow uses instead of the broker.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ValidationError

from sandwich.platform.contract import OrderOut
from sandwich.platform.errors import ApiError
from sandwich.platform.events import ORDER_EVENT, Envelope
from sandwich.platform.identity import Identity, current_identity, require_role
from sandwich.platform.inbox import claim_event
from sandwich.platform.observability import EVENTS_HANDLED
from sandwich.platform.responses import JsonResponse
from sandwich.services.delivery.commands import DeliveryContext, complete_order, list_offers, take_order
from sandwich.services.delivery.domain import (
    InvalidDeliveryEvent,
    InvalidPosition,
    parse_order_id,
    parse_position,
)
from sandwich.services.delivery.handlers import CONSUMER, delivery_update

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


class IngestedOut(BaseModel):
    event_id: str
    outcome: Literal["applied", "stale", "ignored", "duplicate"]


def context_of(request: Request) -> DeliveryContext:
    ctx: DeliveryContext = request.app.state.service.state["delivery"]
    return ctx


def courier_identity(request: Request) -> Identity:
    """FastAPI dependency: the caller, who must be a courier (401 without identity, 403 without the role)."""
    identity = current_identity(request)
    require_role(identity, "courier")
    return identity


def _order_id(raw: str) -> uuid.UUID:
    order_id = parse_order_id(raw)
    if order_id is None:
        raise ApiError(404, "order_not_found", "No such order.")
    return order_id


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
    return JsonResponse({"items": await list_offers(ctx, origin, limit)})


@router.post("/api/v1/delivery/orders/{order_id}/take", response_model=OrderOut)
async def take(
    order_id: str,
    identity: Annotated[Identity, Depends(courier_identity)],
    ctx: Annotated[DeliveryContext, Depends(context_of)],
) -> JsonResponse:
    """Take a ready order: exactly one courier wins; the others get 409 `already_taken`. Repeating
    the call as the courier who took it answers the order again."""
    return JsonResponse(await take_order(ctx, _order_id(order_id), identity.username))


@router.post("/api/v1/delivery/orders/{order_id}/complete", response_model=OrderOut)
async def complete(
    order_id: str,
    identity: Annotated[Identity, Depends(courier_identity)],
    ctx: Annotated[DeliveryContext, Depends(context_of)],
) -> JsonResponse:
    """Mark the courier's delivery done; 403 `not_your_delivery` unless this courier took it."""
    return JsonResponse(await complete_order(ctx, _order_id(order_id), identity.username))


@router.post("/internal/v1/order-events", response_model=IngestedOut, include_in_schema=False)
async def ingest_order_event(
    envelope: Envelope, ctx: Annotated[DeliveryContext, Depends(context_of)]
) -> JsonResponse:
    """An OrderEvent envelope pushed over HTTP (sync flow): the same rule as the consumer, once per event id."""
    if envelope.type != ORDER_EVENT:
        raise ApiError(422, "unsupported_event_type", f"Only {ORDER_EVENT} envelopes are accepted here.")
    try:
        uuid.UUID(envelope.event_id)
        update = delivery_update(envelope)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ApiError(422, "invalid_event", f"Not a valid order event: {fields}") from exc
    except (ValueError, KeyError, TypeError, InvalidDeliveryEvent) as exc:
        raise ApiError(422, "invalid_event", f"Not a valid order event: {exc}"[:500]) from exc
    service = ctx.service
    outcome: str
    async with service.database.begin() as conn:
        if not await claim_event(conn, CONSUMER, envelope.event_id):
            outcome = "duplicate"
        elif update is None:
            outcome = "ignored"
        else:
            outcome = "applied" if await ctx.handler.apply(conn, update) else "stale"
    EVENTS_HANDLED.labels(service.name, CONSUMER, "duplicate" if outcome == "duplicate" else "handled").inc()
    return JsonResponse({"event_id": envelope.event_id, "outcome": outcome})
