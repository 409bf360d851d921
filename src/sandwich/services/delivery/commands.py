"""What delivery does for a courier: list the offers, take one, complete it; keep the deliveries
table by order events; and fill in pickup points that kitchen could not tell when the order became
ready. Each use case takes its command, a unit of work and the ports it calls, and answers with
domain results or raises domain refusals (domain.py) or OrdersUnavailable; api.py makes them HTTP.

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

from sandwich.services.delivery.domain import (
    AlreadyCompleted,
    AlreadyTaken,
    CompleteOutcome,
    Delivery,
    DeliveryRefused,
    DeliveryStatus,
    DeliveryUpdate,
    NotInDelivery,
    NotYourDelivery,
    Offer,
    OrderNotFound,
    Pickup,
    Position,
    TakeOutcome,
    may_complete,
    missing_pickups,
    rank_offers,
    unknown_order_refusal,
)
from sandwich.services.delivery.ports import (
    OrdersAnswerMalformed,
    OrdersUnavailable,
    OrderTransitions,
    PickupPoints,
)
from sandwich.services.delivery.unit_of_work import DeliveryUnitOfWork

log = structlog.get_logger("delivery")

# Sorting by distance looks at up to this many of the oldest offers (the list is short in practice).
OFFER_SCAN_LIMIT = 1000

Order = dict[str, Any]
"""The order as orders, the write side, answers a transition (the contract's OrderOut)."""


@dataclass(frozen=True)
class TakeOrder:
    order_id: uuid.UUID
    courier: str


@dataclass(frozen=True)
class CompleteOrder:
    order_id: uuid.UUID
    courier: str


async def apply_order_update(
    update: DeliveryUpdate, uow: DeliveryUnitOfWork, food_points: PickupPoints
) -> bool:
    """Apply one order event (the consumer's use case); True when the row changed. A ready order gets
    its pickup point when kitchen can tell it now, else the job fills it in later."""
    async with uow:
        pickup = None
        if update.status is DeliveryStatus.READY and update.food_point_id:
            pickup = await food_points.pickup(update.food_point_id)
        changed = await uow.deliveries.apply_update(update, pickup)
        await uow.commit()
    return changed


async def fill_pickups(
    food_point_ids: set[str], uow: DeliveryUnitOfWork, food_points: PickupPoints
) -> dict[str, Pickup]:
    """Ask kitchen (through the cache) for these food points at once; store what it tells."""
    ids = sorted(food_point_ids)
    found = await asyncio.gather(*(food_points.pickup(fp) for fp in ids))
    pickups = {fp: pickup for fp, pickup in zip(ids, found, strict=True) if pickup is not None}
    if pickups:
        async with uow:
            for fp, pickup in pickups.items():
                await uow.deliveries.set_pickup(fp, pickup)
            await uow.commit()
    return pickups


async def fill_missing_pickups(uow: DeliveryUnitOfWork, food_points: PickupPoints) -> None:
    """The periodic job: pickup points of offered deliveries that kitchen could not tell before."""
    async with uow.statements() as step:
        food_point_ids = await step.deliveries.food_points_missing_pickup()
    if food_point_ids:
        await fill_pickups(set(food_point_ids), uow, food_points)


async def list_offers(
    origin: Position | None, limit: int, uow: DeliveryUnitOfWork, food_points: PickupPoints
) -> list[Offer]:
    """Orders ready and not taken: nearest pickup first from `origin`, else oldest first."""
    async with uow.statements() as step:
        deliveries = await step.deliveries.offered(OFFER_SCAN_LIMIT if origin is not None else limit)
    missing = missing_pickups(deliveries)
    if missing:
        pickups = await fill_pickups(missing, uow, food_points)
        deliveries = [_with_pickup(d, pickups) for d in deliveries]
    return rank_offers(deliveries, origin)[:limit]


async def list_own(courier: str, limit: int, uow: DeliveryUnitOfWork) -> list[Offer]:
    """The courier's own deliveries (on the way first, then the latest delivered)."""
    async with uow.statements() as step:
        deliveries = await step.deliveries.of_courier(courier, limit)
    return [Offer(delivery) for delivery in deliveries]


def _with_pickup(delivery: Delivery, pickups: dict[str, Pickup]) -> Delivery:
    if delivery.pickup is not None or delivery.food_point_id not in pickups:
        return delivery
    return dataclasses.replace(delivery, pickup=pickups[delivery.food_point_id])


async def take_order(command: TakeOrder, uow: DeliveryUnitOfWork, orders: OrderTransitions) -> Order:
    """Take the order for the courier: the order (from orders) now in_delivery with them."""
    async with uow:
        outcome, version = await uow.deliveries.take(command.order_id, command.courier)
        if outcome is TakeOutcome.WON:
            await uow.commit()  # before orders hears of it: exactly one courier wins
    if outcome is TakeOutcome.WON:
        assert version is not None
        return await _confirm_take(command, version, uow, orders)
    if outcome is TakeOutcome.ALREADY_MINE:
        # The courier holds the order already: answer the order again (orders' take is idempotent).
        return await orders.take(str(command.order_id), command.courier)
    if outcome is TakeOutcome.ALREADY_COMPLETED:
        raise AlreadyCompleted()
    if outcome is TakeOutcome.ALREADY_TAKEN:
        raise AlreadyTaken()
    # Delivery has no row for it: unknown, not ready yet, or its ready event is still on the way.
    try:
        write_side_status = await orders.status_of(str(command.order_id))
    except OrdersUnavailable as exc:
        log.warning("orders_unavailable_for_unknown_take", order_id=str(command.order_id), error=exc.reason)
        raise OrderNotFound() from exc
    raise unknown_order_refusal(write_side_status)


async def _confirm_take(
    command: TakeOrder, version: int, uow: DeliveryUnitOfWork, orders: OrderTransitions
) -> Order:
    """orders confirms the local take, or it is undone: refused, or orders away (an answer that is
    not an order is no refusal: orders took it, and its in_delivery event will say so)."""
    try:
        return await orders.take(str(command.order_id), command.courier)
    except OrdersAnswerMalformed:
        raise
    except OrdersUnavailable as exc:
        await _release(command, version, uow, reason=exc.reason)
        raise
    except DeliveryRefused as exc:
        await _release(command, version, uow, reason=f"orders refused: {exc.code}")
        raise


async def _release(command: TakeOrder, version: int, uow: DeliveryUnitOfWork, *, reason: str) -> None:
    log.warning("take_undone", order_id=str(command.order_id), courier=command.courier, reason=reason)
    async with uow:
        await uow.deliveries.release(command.order_id, command.courier, version)
        await uow.commit()


async def complete_order(command: CompleteOrder, uow: DeliveryUnitOfWork, orders: OrderTransitions) -> Order:
    """Complete the courier's delivery: the order (from orders) now completed. A repeat by the same
    courier asks orders again (idempotent there) and changes nothing here."""
    async with uow.statements() as step:
        current = await step.deliveries.state(command.order_id)
    outcome = may_complete(current, command.courier)
    if outcome is CompleteOutcome.NOT_FOUND:
        raise OrderNotFound()
    if outcome is CompleteOutcome.NOT_YOURS:
        raise NotYourDelivery()
    if outcome is CompleteOutcome.NOT_IN_DELIVERY:
        raise NotInDelivery()
    order = await orders.complete(str(command.order_id), command.courier)
    if outcome is CompleteOutcome.ALLOWED:
        async with uow:
            await uow.deliveries.mark_completed(command.order_id, command.courier)
            await uow.commit()
    return order
