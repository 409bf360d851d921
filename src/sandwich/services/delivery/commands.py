"""What delivery does for a courier: list the offers, take one, complete it; and fill in pickup
points that kitchen could not tell when the order became ready.

A take is decided locally first (one conditional UPDATE, committed, so exactly one courier wins)
and then confirmed by orders. If orders refuses, or cannot be reached, the local take is undone
and the courier told so (409, or 503 to try again): a courier never holds an order that orders
has not given them. orders' take and complete are idempotent for the same courier, so a retry
after a lost answer is safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from sandwich.platform.app import Service
from sandwich.platform.errors import ApiError
from sandwich.platform.http import Response, ServiceUnavailable
from sandwich.services.delivery import storage
from sandwich.services.delivery.domain import (
    CompleteOutcome,
    Delivery,
    Offer,
    Pickup,
    Position,
    TakeOutcome,
    may_complete,
    missing_pickups,
    public_offer,
    rank_offers,
    unknown_order_outcome,
)
from sandwich.services.delivery.ports import FoodPoints, Orders

log = structlog.get_logger("delivery")

# Sorting by distance looks at up to this many of the oldest offers (the list is short in practice).
OFFER_SCAN_LIMIT = 1000


@dataclass
class DeliveryContext:
    service: Service
    food_points: FoodPoints
    orders: Orders


def _unavailable(what: str) -> ApiError:
    return ApiError(503, "service_unavailable", f"{what} cannot be reached right now, try again.")


def _not_found() -> ApiError:
    return ApiError(404, "order_not_found", "No such order.")


def _refusal(answer: Response, action: str) -> ApiError:
    """orders' refusal as the courier's answer: its code and message, 403/404/409 kept, else 409."""
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    code = str(error.get("code")) if isinstance(error, dict) and error.get("code") else "conflict"
    message = (
        str(error.get("message"))
        if isinstance(error, dict) and error.get("message")
        else f"orders refused to {action} the order."
    )
    status = answer.status if answer.status in (403, 404, 409) else 409
    return ApiError(status, code, message)


def _order_body(answer: Response, action: str) -> dict[str, Any]:
    if not isinstance(answer.body, dict):
        log.error("orders_answer_malformed", action=action, status=answer.status)
        raise _unavailable("orders")
    return answer.body


async def fill_pickups(ctx: DeliveryContext, food_point_ids: set[str]) -> dict[str, Pickup]:
    """Ask kitchen (through the cache) for these food points at once; store what it tells."""
    ids = sorted(food_point_ids)
    found = await asyncio.gather(*(ctx.food_points.pickup(fp) for fp in ids))
    pickups = {fp: pickup for fp, pickup in zip(ids, found, strict=True) if pickup is not None}
    if pickups:
        async with ctx.service.database.begin() as conn:
            for fp, pickup in pickups.items():
                await storage.set_pickup(conn, fp, pickup)
    return pickups


async def fill_missing_pickups(ctx: DeliveryContext) -> None:
    """The periodic job: pickup points of offered deliveries that kitchen could not tell before."""
    async with ctx.service.database.connect() as conn:
        food_point_ids = await storage.food_points_missing_pickup(conn)
    if food_point_ids:
        await fill_pickups(ctx, set(food_point_ids))


async def list_offers(ctx: DeliveryContext, origin: Position | None, limit: int) -> list[dict[str, Any]]:
    """Orders ready and not taken: nearest pickup first from `origin`, else oldest first."""
    async with ctx.service.database.connect() as conn:
        deliveries = await storage.offered(conn, OFFER_SCAN_LIMIT if origin is not None else limit)
    missing = missing_pickups(deliveries)
    if missing:
        pickups = await fill_pickups(ctx, missing)
        deliveries = [_with_pickup(d, pickups) for d in deliveries]
    offers = rank_offers(deliveries, origin)[:limit]
    return [public_offer(offer, with_distance=origin is not None) for offer in offers]


async def list_own(ctx: DeliveryContext, courier: str, limit: int) -> list[dict[str, Any]]:
    """The courier's own deliveries (on the way first, then the latest delivered)."""
    async with ctx.service.database.connect() as conn:
        deliveries = await storage.of_courier(conn, courier, limit)
    return [public_offer(Offer(delivery), with_distance=False) for delivery in deliveries]


def _with_pickup(delivery: Delivery, pickups: dict[str, Pickup]) -> Delivery:
    if delivery.pickup is not None or delivery.food_point_id not in pickups:
        return delivery
    return dataclasses.replace(delivery, pickup=pickups[delivery.food_point_id])


async def take_order(ctx: DeliveryContext, order_id: uuid.UUID, courier: str) -> dict[str, Any]:
    """Take the order for `courier`: the order (from orders) now in_delivery with them."""
    async with ctx.service.database.begin() as conn:
        outcome, version = await storage.take(conn, order_id, courier)
    if outcome is TakeOutcome.WON:
        assert version is not None
        return await _confirm_take(ctx, order_id, courier, version)
    if outcome is TakeOutcome.ALREADY_MINE:
        return await _repeat_take(ctx, order_id, courier)
    if outcome is TakeOutcome.ALREADY_COMPLETED:
        raise ApiError(409, "already_completed", "This order has been delivered already.")
    if outcome is TakeOutcome.ALREADY_TAKEN:
        raise ApiError(409, "already_taken", "Another courier took this order.")
    # Delivery has no row for it: unknown, not ready yet, or its ready event is still on the way.
    try:
        write_side_status = await ctx.orders.status_of(str(order_id))
    except ServiceUnavailable as exc:
        log.warning("orders_unavailable_for_unknown_take", order_id=str(order_id), error=exc.reason)
        raise _not_found() from exc
    status, code, message = unknown_order_outcome(write_side_status)
    raise ApiError(status, code, message)


async def _confirm_take(
    ctx: DeliveryContext, order_id: uuid.UUID, courier: str, version: int
) -> dict[str, Any]:
    try:
        answer = await ctx.orders.take(str(order_id), courier)
    except ServiceUnavailable as exc:
        await _release(ctx, order_id, courier, version, reason=exc.reason)
        raise _unavailable("orders") from exc
    if answer.status == 200:
        return _order_body(answer, "take")
    await _release(ctx, order_id, courier, version, reason=f"orders answered {answer.status}")
    raise _refusal(answer, "take")


async def _release(
    ctx: DeliveryContext, order_id: uuid.UUID, courier: str, version: int, *, reason: str
) -> None:
    log.warning("take_undone", order_id=str(order_id), courier=courier, reason=reason)
    async with ctx.service.database.begin() as conn:
        await storage.release(conn, order_id, courier, version)


async def _repeat_take(ctx: DeliveryContext, order_id: uuid.UUID, courier: str) -> dict[str, Any]:
    """The courier holds the order already: answer the order again (orders' take is idempotent)."""
    try:
        answer = await ctx.orders.take(str(order_id), courier)
    except ServiceUnavailable as exc:
        raise _unavailable("orders") from exc
    if answer.status == 200:
        return _order_body(answer, "take")
    raise _refusal(answer, "take")


async def complete_order(ctx: DeliveryContext, order_id: uuid.UUID, courier: str) -> dict[str, Any]:
    """Complete the courier's delivery: the order (from orders) now completed."""
    async with ctx.service.database.connect() as conn:
        current = await storage.state(conn, order_id)
    outcome = may_complete(current, courier)
    if outcome is CompleteOutcome.NOT_FOUND:
        raise _not_found()
    if outcome is CompleteOutcome.NOT_YOURS:
        raise ApiError(403, "not_your_delivery", "This order is not yours to deliver.")
    if outcome is CompleteOutcome.NOT_IN_DELIVERY:
        raise ApiError(409, "not_in_delivery", "The order is not in delivery.")
    try:
        answer = await ctx.orders.complete(str(order_id), courier)
    except ServiceUnavailable as exc:
        raise _unavailable("orders") from exc
    if answer.status != 200:
        raise _refusal(answer, "complete")
    body = _order_body(answer, "complete")
    if outcome is CompleteOutcome.ALLOWED:
        async with ctx.service.database.begin() as conn:
            await storage.mark_completed(conn, order_id, courier)
    return body
