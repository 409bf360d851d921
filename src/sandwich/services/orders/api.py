"""Routes of orders: the seeds' POST /api/v1/order, and the write side's view for order_info."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from sandwich.platform.bus.base import BusUnavailable
from sandwich.platform.contract import OrderIn, OrderOut
from sandwich.platform.errors import ApiError
from sandwich.platform.events import utcnow
from sandwich.platform.idempotency import IdempotencyKeyReused, check_key, request_hash
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.orders import storage
from sandwich.services.orders.commands import (
    Change,
    EmptyBasket,
    OrderNotFound,
    Placed,
    PlaceOrder,
    RequestInProgress,
    apply_change,
    cancel_for_customer,
    cancelling,
    order_with_history,
    place_order,
)
from sandwich.services.orders.context import OrdersContext, context_of
from sandwich.services.orders.domain import (
    AlreadyTaken,
    Delivery,
    IllegalTransition,
    NotYourDelivery,
    NotYourFoodPoint,
    Order,
    UnknownMenuItem,
    assigned,
    cooked,
    delivered,
    taken,
)
from sandwich.services.orders.ports import BasketUnavailable, PricesUnavailable

router = APIRouter(tags=["orders"])


@router.post(
    "/api/v1/order",
    status_code=201,
    response_model=OrderOut,
    responses={202: {"model": OrderOut, "description": "async flow: accepted, status `created`"}},
)
async def create_order(
    body: OrderIn,
    identity: Annotated[Identity, Depends(current_identity)],
    ctx: Annotated[OrdersContext, Depends(context_of)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JsonResponse:
    """Create an order priced from the menu and pay for it; 201 with the payment outcome in `status`."""
    command = PlaceOrder(
        user_id=identity.user_id,
        username=identity.username,
        lines=[(line.menu_item_id, line.quantity) for line in body.items] if body.items is not None else None,
        delivery=Delivery(body.delivery.address, body.delivery.lat, body.delivery.lon),
        idempotency_key=check_key(idempotency_key),
        request_hash=request_hash(body.model_dump()),
    )
    try:
        placed = await place_order(command, ctx.unit_of_work(), ctx.ports)
    except UnknownMenuItem as exc:
        raise ApiError(422, "unknown_menu_item", f"There is no menu item {exc.menu_item_id}.") from exc
    except EmptyBasket as exc:
        raise ApiError(
            422, "basket_empty", "The basket is empty: add items or send them with the order."
        ) from exc
    except BasketUnavailable as exc:
        raise ApiError(503, "service_unavailable", "The basket cannot be read right now, try again.") from exc
    except PricesUnavailable as exc:
        raise ApiError(503, "service_unavailable", "The menu cannot be read right now, try again.") from exc
    except RequestInProgress as exc:
        raise ApiError(409, "request_in_progress", "The first request is still running.") from exc
    except IdempotencyKeyReused as exc:
        raise ApiError(409, exc.code, exc.message) from exc
    except BusUnavailable as exc:
        raise _downstream_unavailable(exc) from exc
    if isinstance(placed, Placed):
        # ADR 002: accepted now, paid later (202); else created with the payment's outcome (201).
        return JsonResponse(storage.order_view(placed.order), status_code=202 if placed.accepted else 201)
    return JsonResponse(placed.answer.body, status_code=placed.answer.status_code or 201)


@router.get("/internal/v1/orders/{order_id}", include_in_schema=False)
async def order_for_read_side(
    order_id: str, ctx: Annotated[OrdersContext, Depends(context_of)]
) -> dict[str, Any]:
    """The write side's copy of one order, for order_info when its read model has not caught up."""
    try:
        order, history = await order_with_history(order_id, ctx.unit_of_work())
    except OrderNotFound as exc:
        raise ApiError(404, "order_not_found", "No such order.") from exc
    return {"order": storage.order_view(order, with_user=True), "history": history}


def _downstream_unavailable(exc: BusUnavailable) -> ApiError:
    """`sync` flow only: the change is committed, but a service that must hear of it now did not.

    The event stays in the outbox and is delivered when that service is back; repeating the request
    with the same Idempotency-Key returns the committed answer.
    """
    return ApiError(503, "downstream_unavailable", f"Saved, but not yet passed on: {exc}")


def _illegal(exc: IllegalTransition) -> ApiError:
    return ApiError(
        409, "illegal_transition", f"The order is {exc.current.value}: it cannot become {exc.wanted.value}."
    )


async def _change(ctx: OrdersContext, order_id: str, change: Change) -> dict[str, Any]:
    return await _answer(apply_change(order_id, change, ctx.unit_of_work(), ctx.ports))


async def _answer(changing: Awaitable[Order]) -> dict[str, Any]:
    """The order after its change, or the contract's error for why it could not change."""
    try:
        order = await changing
    except OrderNotFound as exc:
        raise ApiError(404, "order_not_found", "No such order.") from exc
    except IllegalTransition as exc:
        raise _illegal(exc) from exc
    except NotYourFoodPoint as exc:
        raise ApiError(403, "not_your_food_point", "This order is another food point's.") from exc
    except NotYourDelivery as exc:
        raise ApiError(403, "not_your_delivery", "This order is another courier's.") from exc
    except AlreadyTaken as exc:
        raise ApiError(409, "already_taken", "Another courier took this order.") from exc
    except BusUnavailable as exc:
        raise _downstream_unavailable(exc) from exc
    return storage.order_view(order)


@router.post("/api/v1/orders/{order_id}/cancel", response_model=OrderOut)
async def cancel_my_order(
    order_id: str,
    identity: Annotated[Identity, Depends(current_identity)],
    ctx: Annotated[OrdersContext, Depends(context_of)],
) -> dict[str, Any]:
    """Cancel in created, paid or assigned; what was paid is refunded. 409 once cooking is done."""
    return await _answer(
        cancel_for_customer(order_id, identity.user_id, identity.is_admin, ctx.unit_of_work(), ctx.ports)
    )


class FoodPointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    food_point_id: Text = Field(min_length=1, max_length=64)


class CourierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    courier: Text = Field(min_length=1, max_length=64)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=1, max_length=200)


@router.post("/internal/v1/orders/{order_id}/assign", include_in_schema=False)
async def assign(
    order_id: str, body: FoodPointIn, ctx: Annotated[OrdersContext, Depends(context_of)]
) -> dict[str, Any]:
    """kitchen assigned the order to a food point (repeating it for the same point changes nothing)."""
    return await _change(ctx, order_id, lambda order: assigned(order, body.food_point_id, utcnow()))


@router.post("/internal/v1/orders/{order_id}/ready", include_in_schema=False)
async def ready(
    order_id: str, body: FoodPointIn, ctx: Annotated[OrdersContext, Depends(context_of)]
) -> dict[str, Any]:
    return await _change(ctx, order_id, lambda order: cooked(order, body.food_point_id, utcnow()))


@router.post("/internal/v1/orders/{order_id}/take", include_in_schema=False)
async def take(
    order_id: str, body: CourierIn, ctx: Annotated[OrdersContext, Depends(context_of)]
) -> dict[str, Any]:
    return await _change(ctx, order_id, lambda order: taken(order, body.courier, utcnow()))


@router.post("/internal/v1/orders/{order_id}/complete", include_in_schema=False)
async def complete(
    order_id: str, body: CourierIn, ctx: Annotated[OrdersContext, Depends(context_of)]
) -> dict[str, Any]:
    return await _change(ctx, order_id, lambda order: delivered(order, body.courier, utcnow()))


@router.post("/internal/v1/orders/{order_id}/cancel", include_in_schema=False)
async def cancel_by_system(
    order_id: str, body: ReasonIn, ctx: Annotated[OrdersContext, Depends(context_of)]
) -> dict[str, Any]:
    """A cancellation decided by another service (e.g. kitchen's assignment timeout); refunds too."""
    return await _change(ctx, order_id, cancelling(body.reason))
