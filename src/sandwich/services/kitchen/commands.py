"""The kitchen's use cases: each takes its arguments, a unit of work and the ports it talks through,
and returns domain results or raises the domain errors below (api.py maps them to the contract).

- the admin's food points and stock (`create_food_point`, `change_food_point`, `put_stock`, reads);
- a cook's "ready" (`mark_ready`), asked of orders first;
- the order events the consumer applies in its inbox transaction (`apply_order_event`).

The assigner's steps (assign, confirm with orders, cancel for timeout) are use cases of the same
shape, in assignment.py.

Whatever frees a slot or changes what food points can take wakes the assigners: a NOTIFY sent on
commit (`uow.supply.notify_assigner`) for every instance, and `wake` for this one, after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from sandwich.platform.events import OrderEvent
from sandwich.services.kitchen.domain import (
    Assignment,
    AssignmentState,
    FoodPoint,
    PendingOrder,
    ReadyVerdict,
    ready_verdict,
)
from sandwich.services.kitchen.ports import OrdersAway, OrdersPort, OrdersRefused, Refusal
from sandwich.services.kitchen.unit_of_work import KitchenUnitOfWork

log = structlog.get_logger("kitchen")

Wake = Callable[[], None]
"""Wake this process's assigner (the NOTIFY reaches the others, and this one a little later)."""


class FoodPointNotFound(Exception):
    pass


class OrderNotFound(Exception):
    pass


class NotYourFoodPoint(Exception):
    """The order is another food point's."""


class IllegalTransition(Exception):
    """The order cannot take this step now (`code` and `message`: ours, or what orders said)."""

    def __init__(self, message: str, code: str = "illegal_transition"):
        super().__init__(message)
        self.code = code
        self.message = message


class OrdersUnavailable(Exception):
    """orders could not be reached, or answered what the kitchen does not understand."""


# --- the admin's food points and stock ---------------------------------------------------------------


@dataclass(frozen=True)
class NewFoodPoint:
    name: str
    address: str
    lat: float
    lon: float
    capacity: int
    accepts_delivery: bool


async def create_food_point(new: NewFoodPoint, uow: KitchenUnitOfWork, wake: Wake) -> FoodPoint:
    async with uow:
        point = await uow.food_points.add(
            name=new.name,
            address=new.address,
            lat=new.lat,
            lon=new.lon,
            capacity=new.capacity,
            accepts_delivery=new.accepts_delivery,
        )
        uow.supply.notify_assigner()
        await uow.commit()
    wake()
    return point


async def change_food_point(
    food_point_id: uuid.UUID, changes: Mapping[str, Any], uow: KitchenUnitOfWork, wake: Wake
) -> FoodPoint:
    """Change any of the editable fields; lowering the capacity below the orders in progress keeps
    them, but no new order is given to the point until it has a free slot again."""
    async with uow:
        point = await uow.food_points.change(food_point_id, changes)
        if point is None:
            raise FoodPointNotFound(str(food_point_id))
        uow.supply.notify_assigner()
        await uow.commit()
    wake()
    return point


async def put_stock(
    food_point_id: uuid.UUID, ingredient: str, quantity: int, uow: KitchenUnitOfWork, wake: Wake
) -> None:
    """Set how much of an ingredient (a cleaned name) the food point has."""
    async with uow:
        if not await uow.food_points.put_stock(food_point_id, ingredient, quantity):
            raise FoodPointNotFound(str(food_point_id))
        uow.supply.notify_assigner()
        await uow.commit()
    wake()


async def food_points_with_stock(uow: KitchenUnitOfWork) -> list[tuple[FoodPoint, dict[str, int]]]:
    async with uow.statements() as reads:
        points = await reads.food_points.all()
        stock = await reads.food_points.stock_of()
    return [(point, stock.get(point.food_point_id, {})) for point in points]


async def food_point_with_stock(
    food_point_id: uuid.UUID, uow: KitchenUnitOfWork
) -> tuple[FoodPoint, dict[str, int]]:
    async with uow.statements() as reads:
        point = await reads.food_points.get(food_point_id)
        stock = await reads.food_points.stock_of(food_point_id)
    if point is None:
        raise FoodPointNotFound(str(food_point_id))
    return point, stock.get(point.food_point_id, {})


async def food_point(food_point_id: uuid.UUID, uow: KitchenUnitOfWork) -> FoodPoint:
    async with uow.statements() as reads:
        point = await reads.food_points.get(food_point_id)
    if point is None:
        raise FoodPointNotFound(str(food_point_id))
    return point


# --- cooks -------------------------------------------------------------------------------------------


async def cook_queue(food_point_id: str, uow: KitchenUnitOfWork) -> list[Assignment]:
    """Orders assigned to the food point and not yet ready, oldest assignment first (including one
    reserved here a moment ago whose confirmation by orders is still on its way)."""
    async with uow.statements() as reads:
        return await reads.assignments.at(uuid.UUID(food_point_id))


async def mark_ready(
    order_id: uuid.UUID, food_point_id: str, uow: KitchenUnitOfWork, orders: OrdersPort, wake: Wake
) -> Any:
    """The cook's food point has cooked the order: orders makes it `ready` (what it answers is
    returned), and the slot is free again. Whatever orders refuses changes nothing here, except an
    order it cancelled meanwhile, whose slot and ingredients are given back (`_reconcile_refused`)."""
    order_key = str(order_id)
    async with uow.statements() as reads:
        assignment = await reads.assignments.get(order_id)
    verdict = ready_verdict(assignment, food_point_id)
    if verdict is ReadyVerdict.NOT_YOURS:
        raise NotYourFoodPoint(order_key)
    if verdict is ReadyVerdict.NOT_ASSIGNED:
        ready = assignment is not None and assignment.state is AssignmentState.READY
        state = "is already ready" if ready else "is not assigned"
        raise IllegalTransition(f"The order {state}: it cannot become ready.")
    try:
        order = await orders.ready(order_key, food_point_id)
    except OrdersAway as exc:
        if exc.unexpected:
            raise OrdersUnavailable("Orders gave an unexpected answer, try again.") from exc
        raise OrdersUnavailable("Orders cannot be reached right now, try again.") from exc
    except OrdersRefused as refused:
        if refused.refusal is Refusal.NOT_YOUR_FOOD_POINT:
            raise NotYourFoodPoint(order_key) from refused
        if refused.refusal is Refusal.NOT_FOUND:
            raise OrderNotFound(order_key) from refused
        await _reconcile_refused(order_key, uow, orders, wake)
        message = refused.message or "The order cannot become ready."
        raise IllegalTransition(message, refused.code or "illegal_transition") from refused
    await _free_slot(order_key, uow, wake, cancelled=False)
    return order


async def _free_slot(order_id: str, uow: KitchenUnitOfWork, wake: Wake, *, cancelled: bool | None) -> None:
    """In one transaction: give the slot back as cancelled (with the ingredients) or as ready; with
    `cancelled=None` nothing changes (as orders reports an order still on its way)."""
    async with uow:
        if cancelled is None:
            changed = False
        elif cancelled:
            changed = await uow.assignments.release(order_id) is not None
        else:
            changed = await uow.assignments.mark_ready(order_id) is not None
        if changed:
            uow.supply.notify_assigner()
        await uow.commit()
    if changed:
        wake()


async def _reconcile_refused(order_id: str, uow: KitchenUnitOfWork, orders: OrdersPort, wake: Wake) -> None:
    """orders refused "ready": if the order was cancelled meanwhile (a cancellation this kitchen has not
    heard of, e.g. in the sync flow), give its slot and ingredients back now."""
    status = await orders.status_of(order_id)
    if status is None:
        return
    if status == "cancelled":
        await _free_slot(order_id, uow, wake, cancelled=True)
    elif status in ("ready", "in_delivery", "completed"):
        await _free_slot(order_id, uow, wake, cancelled=False)
    else:
        await _free_slot(order_id, uow, wake, cancelled=None)


# --- order events (the consumer's transactional path) ------------------------------------------------


async def apply_order_event(
    event: OrderEvent, uow: KitchenUnitOfWork, pending: PendingOrder | None = None
) -> bool:
    """Apply one order event (`pending`: a paid order as it waits for a food point); True when the
    assigner has new work. Every effect is idempotent by itself, on top of the inbox's once per
    event id."""
    order_id = event.order.order_id
    async with uow:
        work = False
        if event.status == "paid":
            if pending is None:
                raise ValueError("a paid order's event needs the order as it waits")
            work = await uow.pending.add(pending)
        elif event.status == "assigned":
            if event.order.food_point_id:
                await uow.assignments.confirm(order_id, event.order.food_point_id)
        elif event.status == "cancelled":
            await uow.pending.drop(order_id)
            work = await uow.assignments.release(order_id) is not None
        elif event.status in ("ready", "in_delivery", "completed"):
            work = await uow.assignments.mark_ready(order_id) is not None
        if work:
            uow.supply.notify_assigner()
        await uow.commit()
    return work
