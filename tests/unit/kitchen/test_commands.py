"""The kitchen's use cases through the in-memory unit of work: which food point an order goes to,
repeats that change nothing, the cook of another food point, stock that never goes negative, what
wakes the assigners, and that a refused command commits nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandwich.platform.events import OrderEvent
from sandwich.services.kitchen import commands
from sandwich.services.kitchen.assignment import (
    CandidateSnapshots,
    Confirmation,
    Outcome,
    assign_order,
    cancel_timed_out,
    confirm_assignment,
)
from sandwich.services.kitchen.commands import (
    FoodPointNotFound,
    IllegalTransition,
    NewFoodPoint,
    NotYourFoodPoint,
    OrdersUnavailable,
)
from sandwich.services.kitchen.domain import NO_FOOD_POINT_IN_TIME, AssignmentState, PendingOrder
from tests.unit.kitchen.fakes import FakeKitchenUnitOfWork, FakeOrders, Wakes

pytestmark = pytest.mark.unit

HOME = (55.75, 37.62)
NEAR = (55.751, 37.621)
MIDDLE = (55.80, 37.70)
FAR = (59.93, 30.33)
NEEDS = {"bread": 2, "ham": 1}


@pytest.fixture
def uow() -> FakeKitchenUnitOfWork:
    return FakeKitchenUnitOfWork()


@pytest.fixture
def orders() -> FakeOrders:
    return FakeOrders()


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


async def point(
    uow: FakeKitchenUnitOfWork,
    where: tuple[float, float],
    *,
    capacity: int = 5,
    accepts_delivery: bool = True,
    stock: dict[str, int] | None = None,
) -> str:
    new = NewFoodPoint("P", "A 1", where[0], where[1], capacity, accepts_delivery)
    created = await commands.create_food_point(new, uow, lambda: None)
    for ingredient, quantity in (stock if stock is not None else {"bread": 100, "ham": 100}).items():
        await commands.put_stock(uuid.UUID(created.food_point_id), ingredient, quantity, uow, lambda: None)
    return created.food_point_id


def waiting(paid_ago: float = 0.0) -> PendingOrder:
    return PendingOrder(
        order_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        username="alice",
        items=[{"menu_item_id": str(uuid.UUID(int=1)), "name": "Club", "quantity": 1, "price": 500}],
        delivery={"address": "Home 1", "lat": HOME[0], "lon": HOME[1]},
        lat=HOME[0],
        lon=HOME[1],
        paid_at=datetime.now(UTC) - timedelta(seconds=paid_ago),
    )


async def paid(uow: FakeKitchenUnitOfWork, order: PendingOrder | None = None) -> PendingOrder:
    order = order or waiting()
    assert await uow.pending.add(order)
    return order


async def assign(
    uow: FakeKitchenUnitOfWork, order: PendingOrder, needs: dict[str, int] | None = NEEDS, **kwargs: Any
) -> tuple[Outcome, str | None]:
    options: dict[str, Any] = {"snapshots": CandidateSnapshots(), "timeout_seconds": 600.0} | kwargs
    return await assign_order(order, needs, uow, **options)


def event(status: str, order: PendingOrder, food_point_id: str | None = None) -> OrderEvent:
    snapshot = {
        "order_id": order.order_id,
        "user_id": order.user_id,
        "username": order.username,
        "status": status,
        "items": order.items,
        "total": 500,
        "delivery": order.delivery,
        "food_point_id": food_point_id,
        "created_at": "2024-01-05T10:00:00Z",
        "updated_at": "2024-01-05T10:00:01Z",
    }
    return OrderEvent.model_validate(
        {"status": status, "previous_status": None, "at": "2024-01-05T10:00:01Z", "order": snapshot}
    )


# --- the admin ---------------------------------------------------------------------------------------


async def test_a_new_food_point_wakes_the_assigners_once_committed(
    uow: FakeKitchenUnitOfWork, wakes: Wakes
) -> None:
    supply = uow.tables.supply
    new = NewFoodPoint("Corner", "Main 1", 10.0, 20.0, 3, True)

    created = await commands.create_food_point(new, uow, wakes)

    assert uow.tables.points == {created.food_point_id: created}
    assert (uow.commits, uow.tables.notifications, wakes.count) == (1, 1, 1)
    assert uow.tables.supply == supply + 1  # waiting orders are due again
    assert uow.announced == []  # the kitchen writes no outbox events: it tells orders over HTTP


@pytest.mark.parametrize("change", ["patch", "stock"])
async def test_a_change_of_an_unknown_food_point_commits_nothing(
    uow: FakeKitchenUnitOfWork, wakes: Wakes, change: str
) -> None:
    supply = uow.tables.supply
    unknown = uuid.uuid4()
    with pytest.raises(FoodPointNotFound):
        if change == "patch":
            await commands.change_food_point(unknown, {"capacity": 1}, uow, wakes)
        else:
            await commands.put_stock(unknown, "bread", 5, uow, wakes)

    assert (uow.commits, uow.tables.notifications, wakes.count) == (0, 0, 0)
    assert uow.tables.supply == supply and uow.tables.stock == {}


# --- assigning ---------------------------------------------------------------------------------------


async def test_the_nearest_point_with_a_free_slot_and_the_ingredients_takes_the_order(
    uow: FakeKitchenUnitOfWork,
) -> None:
    await point(uow, NEAR, stock={"bread": 100})  # nearest, but no ham
    await point(uow, NEAR, capacity=0)  # as near, but no free slot
    await point(uow, NEAR, accepts_delivery=False)
    middle = await point(uow, MIDDLE)
    far = await point(uow, FAR)
    order = await paid(uow)

    assert await assign(uow, order) == (Outcome.ASSIGNED, middle)

    assert uow.tables.points[middle].active_orders == 1 and uow.tables.points[far].active_orders == 0
    assert uow.tables.stock[middle] == {"bread": 98, "ham": 99}
    assert uow.tables.assignments[order.order_id].state is AssignmentState.RESERVED
    assert order.order_id not in uow.tables.pending


async def test_an_order_no_point_can_take_waits_noted_at_the_current_supply(
    uow: FakeKitchenUnitOfWork,
) -> None:
    only = await point(uow, NEAR, stock={"bread": 1, "ham": 100})
    order = await paid(uow)

    assert await assign(uow, order) == (Outcome.WAITING, None)

    assert uow.tables.tried_at == {order.order_id: uow.tables.supply}
    assert order.order_id in uow.tables.pending and uow.tables.assignments == {}
    assert uow.tables.points[only].active_orders == 0 and uow.tables.stock[only]["bread"] == 1


async def test_in_a_pass_the_waiting_order_is_left_for_the_pass_to_note(uow: FakeKitchenUnitOfWork) -> None:
    await point(uow, NEAR, stock={})
    order = await paid(uow)
    commits = uow.commits
    tried: dict[int, list[str]] = {}

    assert await assign(uow, order, tried=tried) == (Outcome.WAITING, None)

    assert tried == {uow.tables.supply: [order.order_id]}
    assert uow.commits == commits and uow.tables.attempts == {}


async def test_stock_never_goes_negative(uow: FakeKitchenUnitOfWork) -> None:
    only = await point(uow, NEAR, stock={"bread": 5, "ham": 100})  # two orders' bread, and one left
    orders_ = [await paid(uow) for _ in range(3)]

    outcomes = [(await assign(uow, order))[0] for order in orders_]

    assert outcomes == [Outcome.ASSIGNED, Outcome.ASSIGNED, Outcome.WAITING]
    assert uow.tables.stock[only] == {"bread": 1, "ham": 98}


async def test_an_order_another_transaction_works_on_is_skipped(uow: FakeKitchenUnitOfWork) -> None:
    await point(uow, NEAR)
    order = await paid(uow)
    uow.tables.locked_elsewhere.add(order.order_id)
    commits = uow.commits

    assert await assign(uow, order) == (Outcome.SKIPPED, None)
    assert uow.commits == commits and uow.tables.assignments == {}


async def test_a_timed_out_order_no_point_can_take_is_marked_for_cancellation(
    uow: FakeKitchenUnitOfWork,
) -> None:
    await point(uow, NEAR, stock={})
    order = await paid(uow, waiting(paid_ago=120))

    assert await assign(uow, order, timeout_seconds=60.0) == (Outcome.EXPIRED, None)
    assert uow.tables.cancel_requested == {order.order_id}


async def test_a_late_order_a_point_can_take_is_placed_not_cancelled(uow: FakeKitchenUnitOfWork) -> None:
    near = await point(uow, NEAR)
    order = await paid(uow, waiting(paid_ago=3600))

    assert await assign(uow, order, timeout_seconds=60.0) == (Outcome.ASSIGNED, near)
    assert uow.tables.cancel_requested == set()


async def test_confirming_twice_changes_nothing_the_second_time(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes
) -> None:
    near = await point(uow, NEAR)
    order = await paid(uow)
    await assign(uow, order)

    first = await confirm_assignment(order.order_id, near, uow, orders, wakes)
    again = await confirm_assignment(order.order_id, near, uow, orders, wakes)

    assert (first, again) == (Confirmation.CONFIRMED, Confirmation.UNCHANGED)
    assert uow.tables.assignments[order.order_id].state is AssignmentState.CONFIRMED
    assert orders.calls == [("assigned", order.order_id, near)] * 2 and wakes.count == 0


@pytest.mark.parametrize("status", [404, 409])
async def test_a_refused_assignment_gives_the_slot_and_ingredients_back_once(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes, status: int
) -> None:
    near = await point(uow, NEAR, capacity=1)
    order = await paid(uow)
    await assign(uow, order)
    orders.status = status
    notified = uow.tables.notifications

    first = await confirm_assignment(order.order_id, near, uow, orders, wakes)
    again = await confirm_assignment(order.order_id, near, uow, orders, wakes)

    assert (first, again) == (Confirmation.RELEASED, Confirmation.UNCHANGED)
    assert uow.tables.points[near].active_orders == 0 and uow.tables.stock[near] == {"bread": 100, "ham": 100}
    assert (uow.tables.notifications - notified, wakes.count) == (1, 1)


async def test_an_unreachable_orders_leaves_the_reservation_for_a_retry(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes
) -> None:
    near = await point(uow, NEAR)
    order = await paid(uow)
    await assign(uow, order)
    orders.down = True

    assert await confirm_assignment(order.order_id, near, uow, orders, wakes) is Confirmation.RETRY
    assert uow.tables.assignments[order.order_id].state is AssignmentState.RESERVED
    assert uow.tables.confirm_attempts == {order.order_id: 1}


async def test_a_timed_out_order_is_forgotten_only_once_orders_cancelled_it(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders
) -> None:
    order = await paid(uow)
    await uow.pending.request_cancel(order.order_id)
    orders.down = True
    assert not await cancel_timed_out(order.order_id, uow, orders)
    assert order.order_id in uow.tables.pending and uow.tables.attempts == {order.order_id: 1}

    orders.down = False
    assert await cancel_timed_out(order.order_id, uow, orders)
    assert uow.tables.pending == {}
    assert orders.calls == [("cancelled", order.order_id, NO_FOOD_POINT_IN_TIME)]


# --- the cook's "ready" ------------------------------------------------------------------------------


async def assigned_to(
    uow: FakeKitchenUnitOfWork, where: tuple[float, float] = NEAR
) -> tuple[str, PendingOrder]:
    food_point = await point(uow, where, capacity=1)
    order = await paid(uow)
    await assign(uow, order)
    await uow.assignments.confirm(order.order_id)
    return food_point, order


async def test_ready_frees_the_slot_keeps_the_ingredients_used_and_wakes_the_assigners(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes
) -> None:
    food_point, order = await assigned_to(uow)
    notified = uow.tables.notifications

    answer = await commands.mark_ready(uuid.UUID(order.order_id), food_point, uow, orders, wakes)

    assert answer == {"order_id": order.order_id, "status": "ready"}
    assert uow.tables.assignments[order.order_id].state is AssignmentState.READY
    assert uow.tables.points[food_point].active_orders == 0 and uow.tables.stock[food_point]["bread"] == 98
    assert (uow.tables.notifications - notified, wakes.count) == (1, 1)


async def test_ready_twice_is_refused_without_asking_orders_or_committing(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes
) -> None:
    food_point, order = await assigned_to(uow)
    await commands.mark_ready(uuid.UUID(order.order_id), food_point, uow, orders, wakes)
    commits, calls = uow.commits, list(orders.calls)

    with pytest.raises(IllegalTransition, match="is already ready"):
        await commands.mark_ready(uuid.UUID(order.order_id), food_point, uow, orders, wakes)

    assert (uow.commits, orders.calls, wakes.count) == (commits, calls, 1)


async def test_the_cook_of_another_food_point_is_refused(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes
) -> None:
    food_point, order = await assigned_to(uow)
    other = await point(uow, FAR)
    commits = uow.commits

    with pytest.raises(NotYourFoodPoint):
        await commands.mark_ready(uuid.UUID(order.order_id), other, uow, orders, wakes)

    assert (uow.commits, orders.calls, wakes.count) == (commits, [], 0)
    assert uow.tables.points[food_point].active_orders == 1


async def test_ready_of_an_order_not_assigned_here_is_an_illegal_transition(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes
) -> None:
    with pytest.raises(IllegalTransition, match="is not assigned") as refused:
        await commands.mark_ready(uuid.uuid4(), str(uuid.uuid4()), uow, orders, wakes)
    assert refused.value.code == "illegal_transition" and uow.commits == 0


async def test_orders_refusing_ready_for_an_order_it_cancelled_gives_the_slot_back(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes
) -> None:
    food_point, order = await assigned_to(uow)
    orders.status, orders.order_status = 409, "cancelled"

    with pytest.raises(IllegalTransition) as refused:
        await commands.mark_ready(uuid.UUID(order.order_id), food_point, uow, orders, wakes)

    assert (refused.value.code, refused.value.message) == ("illegal_transition", "orders says no")
    assert uow.tables.assignments[order.order_id].state is AssignmentState.RELEASED
    assert uow.tables.stock[food_point] == {"bread": 100, "ham": 100} and wakes.count == 1


async def test_ready_while_orders_is_away_changes_nothing(
    uow: FakeKitchenUnitOfWork, orders: FakeOrders, wakes: Wakes
) -> None:
    food_point, order = await assigned_to(uow)
    orders.down = True
    commits = uow.commits

    with pytest.raises(OrdersUnavailable):
        await commands.mark_ready(uuid.UUID(order.order_id), food_point, uow, orders, wakes)

    assert uow.commits == commits and uow.tables.points[food_point].active_orders == 1


# --- order events ------------------------------------------------------------------------------------


async def test_a_paid_event_after_the_assignment_adds_no_waiting_order(uow: FakeKitchenUnitOfWork) -> None:
    await point(uow, NEAR)
    order = waiting()
    assert await commands.apply_order_event(event("paid", order), uow, order)
    notified = uow.tables.notifications
    await assign(uow, order)

    assert not await commands.apply_order_event(event("paid", order), uow, order)
    assert uow.tables.pending == {} and uow.tables.notifications == notified


async def test_a_cancelled_event_gives_back_once_and_ready_after_it_frees_nothing(
    uow: FakeKitchenUnitOfWork,
) -> None:
    food_point = await point(uow, NEAR, capacity=1)
    order = await paid(uow)
    await assign(uow, order)

    assert await commands.apply_order_event(event("cancelled", order, food_point), uow)
    assert not await commands.apply_order_event(event("cancelled", order, food_point), uow)
    assert not await commands.apply_order_event(event("ready", order, food_point), uow)

    assert uow.tables.points[food_point].active_orders == 0
    assert uow.tables.stock[food_point] == {"bread": 100, "ham": 100}
    assert uow.tables.assignments[order.order_id].state is AssignmentState.RELEASED
