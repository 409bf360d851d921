"""The kitchen's assignment against a real PostgreSQL: the nearest eligible food point wins, capacity
and stock hold under concurrent assigners, freed slots are reused, and orders' answers are honoured."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from sandwich.platform.db import Database, plain_url
from sandwich.platform.events import ORDER_EVENT, Envelope
from sandwich.platform.inbox import handle_once
from sandwich.services.kitchen.assigner import Assigner, Outcome
from sandwich.services.kitchen.domain import NO_FOOD_POINT_IN_TIME, PendingOrder
from sandwich.services.kitchen.handlers import CONSUMER, order_events_consumer
from sandwich.services.kitchen.storage import (
    PostgresAssignments,
    PostgresFoodPoints,
    PostgresPendingOrders,
    Supply,
    bump_supply,
)
from sandwich.services.kitchen.unit_of_work import SqlKitchenUnitOfWork
from tests.integration.kitchen.conftest import FakeOrders, FakeRecipes

pytestmark = pytest.mark.integration

CLUB = str(uuid.UUID(int=1))
WATER = str(uuid.UUID(int=2))
RECIPES = FakeRecipes({CLUB: (("bread", 2), ("ham", 1)), WATER: ()})
HOME = (55.75, 37.62)
NEAR = (55.751, 37.621)  # ~130 m from HOME
MIDDLE = (55.80, 37.70)  # ~7 km
FAR = (59.93, 30.33)  # Saint Petersburg


def assigner(db: Database, orders: FakeOrders, *, timeout: float = 600) -> Assigner:
    return Assigner(
        lambda: SqlKitchenUnitOfWork(db),
        orders,
        RECIPES,
        listen_dsn=plain_url(db.server_url, db.name),
        timeout_seconds=timeout,
        confirm_retry_seconds=0,
    )


async def add_point(
    db: Database,
    where: tuple[float, float],
    *,
    capacity: int = 5,
    accepts_delivery: bool = True,
    stock: dict[str, int] | None = None,
    name: str = "point",
) -> str:
    async with db.begin() as conn:
        points = PostgresFoodPoints(conn)
        point = await points.add(
            name=name,
            address=f"{name} street 1",
            lat=where[0],
            lon=where[1],
            capacity=capacity,
            accepts_delivery=accepts_delivery,
        )
        for ingredient, quantity in (stock if stock is not None else {"bread": 100, "ham": 100}).items():
            await points.put_stock(uuid.UUID(point.food_point_id), ingredient, quantity)
    return point.food_point_id


def order(quantity: int = 1, *, menu_item_id: str = CLUB, paid_ago: float = 0.0) -> PendingOrder:
    return PendingOrder(
        order_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        username="alice",
        items=[{"menu_item_id": menu_item_id, "name": "Club", "quantity": quantity, "price": 500}],
        delivery={"address": "Home 1", "lat": HOME[0], "lon": HOME[1]},
        lat=HOME[0],
        lon=HOME[1],
        paid_at=datetime.now(UTC) - timedelta(seconds=paid_ago),
    )


async def add_pending(db: Database, *orders: PendingOrder) -> None:
    async with db.begin() as conn:
        for pending in orders:
            assert await PostgresPendingOrders(conn).add(pending)


async def point_state(db: Database, food_point_id: str) -> tuple[int, dict[str, int]]:
    async with db.connect() as conn:
        point = await PostgresFoodPoints(conn).get(uuid.UUID(food_point_id))
        stock = await PostgresFoodPoints(conn).stock_of(uuid.UUID(food_point_id))
    assert point is not None
    return point.active_orders, stock.get(food_point_id, {})


async def states(db: Database) -> dict[str, str]:
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT order_id::text AS id, state FROM assignments"))).all()
    return {row.id: row.state for row in rows}


async def pending_ids(db: Database) -> set[str]:
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT order_id::text AS id FROM pending_orders"))).all()
    return {row.id for row in rows}


def envelope(status: str, pending: PendingOrder, food_point_id: str | None = None) -> Envelope:
    snapshot: dict[str, Any] = {
        "order_id": pending.order_id,
        "user_id": pending.user_id,
        "username": pending.username,
        "status": status,
        "items": pending.items,
        "total": 500,
        "delivery": pending.delivery,
        "food_point_id": food_point_id,
        "created_at": "2024-01-05T10:00:00Z",
        "updated_at": "2024-01-05T10:00:01Z",
    }
    at = pending.paid_at.isoformat().replace("+00:00", "Z")
    payload = {"status": status, "previous_status": None, "at": at, "order": snapshot}
    return Envelope(type=ORDER_EVENT, producer="orders", key=pending.order_id, payload=payload)


async def deliver(db: Database, event: Envelope) -> bool:
    """What the platform's inbox consumer does with one message (False: a duplicate it dropped)."""
    return await handle_once(db, CONSUMER, order_events_consumer(), event)


# --- choosing ----------------------------------------------------------------------------------------


async def test_the_nearest_eligible_point_wins(db: Database, orders: FakeOrders) -> None:
    far = await add_point(db, FAR, name="far")
    middle = await add_point(db, MIDDLE, name="middle")
    near = await add_point(db, NEAR, name="near")
    paid = order(quantity=3)
    await add_pending(db, paid)

    report = await assigner(db, orders).run_pass()

    assert (report.assigned, report.confirmed) == (1, 1)
    assert orders.of("assigned") == [("assigned", paid.order_id, near)]
    assert await states(db) == {paid.order_id: "confirmed"}
    assert await point_state(db, near) == (1, {"bread": 94, "ham": 97})
    assert await point_state(db, middle) == (0, {"bread": 100, "ham": 100})
    assert await point_state(db, far) == (0, {"bread": 100, "ham": 100})
    assert await pending_ids(db) == set()


@pytest.mark.parametrize(
    "near_point",
    [
        pytest.param({"stock": {"bread": 100}}, id="missing-ingredient"),
        pytest.param({"stock": {"bread": 5, "ham": 100}}, id="too-little-of-an-ingredient"),
        pytest.param({"capacity": 0}, id="no-capacity"),
        pytest.param({"accepts_delivery": False}, id="not-accepting-delivery"),
    ],
)
async def test_a_nearer_ineligible_point_is_skipped(
    db: Database, orders: FakeOrders, near_point: dict[str, Any]
) -> None:
    near = await add_point(db, NEAR, name="near", **near_point)
    middle = await add_point(db, MIDDLE, name="middle")
    paid = order(quantity=3)
    await add_pending(db, paid)

    await assigner(db, orders).run_pass()

    assert orders.of("assigned") == [("assigned", paid.order_id, middle)]
    assert (await point_state(db, near))[0] == 0
    assert await point_state(db, middle) == (1, {"bread": 94, "ham": 97})


async def test_a_full_point_is_skipped_once_its_slots_are_taken(db: Database, orders: FakeOrders) -> None:
    near = await add_point(db, NEAR, capacity=1, name="near")
    middle = await add_point(db, MIDDLE, name="middle")
    first, second = order(), order()
    await add_pending(db, first, second)

    await assigner(db, orders).run_pass()

    assert orders.of("assigned") == [
        ("assigned", first.order_id, near),
        ("assigned", second.order_id, middle),
    ]


async def test_an_order_no_point_can_take_keeps_waiting(db: Database, orders: FakeOrders) -> None:
    await add_point(db, NEAR, stock={})
    paid = order()
    await add_pending(db, paid)

    report = await assigner(db, orders).run_pass()

    assert (report.assigned, report.waiting) == (0, 1)
    assert await pending_ids(db) == {paid.order_id}
    assert orders.calls == []


async def test_orders_no_point_can_take_are_noted_together_and_tried_again_only_after_a_supply_change(
    db: Database, orders: FakeOrders
) -> None:
    await add_point(db, NEAR, stock={})
    waiting = [order() for _ in range(3)]
    await add_pending(db, *waiting)
    kitchen = assigner(db, orders)

    first = await kitchen.run_pass()
    async with db.connect() as conn:
        supply = await Supply(conn).version()
        noted = (
            await conn.execute(text("SELECT attempts, tried_at_supply FROM pending_orders ORDER BY order_id"))
        ).all()
    assert first.waiting == 3
    assert [(row.attempts, row.tried_at_supply) for row in noted] == [(1, supply)] * 3

    again = await kitchen.run_pass()  # same supply: nothing to try
    assert (again.waiting, again.assigned) == (0, 0)

    async with db.connect() as conn:
        await bump_supply(conn)
    after = await kitchen.run_pass()
    assert after.waiting == 3 and orders.calls == []


# --- concurrency -------------------------------------------------------------------------------------


class StockWatch:
    """Samples the lowest stock and the highest active_orders seen while a race runs."""

    def __init__(self, db: Database, food_point_id: str) -> None:
        self.db = db
        self.food_point_id = food_point_id
        self.min_stock: int | None = None
        self.max_active = 0
        self.samples = 0

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(plain_url(self.db.server_url, self.db.name))
        try:
            while not stop.is_set():
                active = await conn.fetchval(
                    "SELECT active_orders FROM food_points WHERE id = $1", uuid.UUID(self.food_point_id)
                )
                lowest = await conn.fetchval(
                    "SELECT min(quantity) FROM stock WHERE food_point_id = $1", uuid.UUID(self.food_point_id)
                )
                self.max_active = max(self.max_active, active)
                self.min_stock = lowest if self.min_stock is None else min(self.min_stock, lowest)
                self.samples += 1
                await asyncio.sleep(0)
        finally:
            await conn.close()


async def race(db: Database, work: list[Any], watch: StockWatch) -> list[Any]:
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch.run(stop))
    try:
        return await asyncio.gather(*work)
    finally:
        stop.set()
        await watcher


async def test_forty_concurrent_reservations_never_exceed_capacity(db: Database, orders: FakeOrders) -> None:
    point = await add_point(db, NEAR, capacity=5, stock={"bread": 1000, "ham": 1000})
    waiting = [order(quantity=2) for _ in range(40)]
    await add_pending(db, *waiting)
    needs = {"bread": 4, "ham": 2}
    a, b = assigner(db, orders), assigner(db, orders)  # two assigner instances, one database

    watch = StockWatch(db, point)
    outcomes = await race(
        db, [(a if i % 2 else b).assign_one(w, needs) for i, w in enumerate(waiting)], watch
    )

    assigned = [o for o, _ in outcomes if o is Outcome.ASSIGNED]
    assert len(assigned) == 5
    assert sorted({o.value for o, _ in outcomes}) == ["assigned", "waiting"]
    assert await point_state(db, point) == (5, {"bread": 1000 - 5 * 4, "ham": 1000 - 5 * 2})
    assert list((await states(db)).values()) == ["reserved"] * 5
    assert len(await pending_ids(db)) == 35
    assert watch.max_active <= 5 and watch.min_stock is not None and watch.min_stock >= 0


async def test_forty_concurrent_reservations_never_drive_stock_negative(
    db: Database, orders: FakeOrders
) -> None:
    point = await add_point(db, NEAR, capacity=100, stock={"bread": 29, "ham": 1000})
    waiting = [order(quantity=2) for _ in range(40)]  # 4 bread each: 7 orders fit, 1 bread is left
    await add_pending(db, *waiting)
    needs = {"bread": 4, "ham": 2}
    a, b = assigner(db, orders), assigner(db, orders)

    watch = StockWatch(db, point)
    outcomes = await race(
        db, [(a if i % 2 else b).assign_one(w, needs) for i, w in enumerate(waiting)], watch
    )

    assert sum(1 for o, _ in outcomes if o is Outcome.ASSIGNED) == 7
    assert await point_state(db, point) == (7, {"bread": 1, "ham": 1000 - 7 * 2})
    assert watch.min_stock is not None and watch.min_stock >= 0


async def test_concurrent_passes_fill_two_points_exactly(db: Database, orders: FakeOrders) -> None:
    near = await add_point(db, NEAR, capacity=5, name="near")
    middle = await add_point(db, MIDDLE, capacity=5, name="middle")
    waiting = [order() for _ in range(40)]
    await add_pending(db, *waiting)

    reports = await asyncio.gather(*(assigner(db, orders).run_pass() for _ in range(4)))

    assert sum(r.assigned for r in reports) == 10
    assert (await point_state(db, near))[0] == 5
    assert (await point_state(db, middle))[0] == 5
    assigned_ids = [call[1] for call in orders.of("assigned")]
    assert len(assigned_ids) == len(set(assigned_ids)) == 10
    # oldest first: the ten assigned are the ten paid first
    assert set(assigned_ids) == {w.order_id for w in waiting[:10]}


# --- freeing slots -----------------------------------------------------------------------------------


async def test_a_freed_slot_lets_the_next_pending_order_be_assigned(db: Database, orders: FakeOrders) -> None:
    point = await add_point(db, NEAR, capacity=1, stock={"bread": 100, "ham": 100})
    first, second = order(), order()
    await add_pending(db, first, second)
    kitchen = assigner(db, orders)

    await kitchen.run_pass()
    assert await states(db) == {first.order_id: "confirmed"}
    assert await pending_ids(db) == {second.order_id}

    async with db.begin() as conn:
        assert await PostgresAssignments(conn).mark_ready(first.order_id) == point
        assert await PostgresAssignments(conn).mark_ready(first.order_id) is None  # the slot is freed once
    assert await point_state(db, point) == (0, {"bread": 98, "ham": 99})  # cooked: stock stays used

    await kitchen.run_pass()
    assert await states(db) == {first.order_id: "ready", second.order_id: "confirmed"}
    assert await point_state(db, point) == (1, {"bread": 96, "ham": 98})


async def test_ready_events_free_the_slot_once(db: Database, orders: FakeOrders) -> None:
    point = await add_point(db, NEAR, capacity=1)
    paid = order()
    await add_pending(db, paid)
    await assigner(db, orders).run_pass()

    assert await deliver(db, envelope("ready", paid, point))
    assert await deliver(db, envelope("ready", paid, point))  # another event id, same fact
    assert (await point_state(db, point))[0] == 0
    assert await states(db) == {paid.order_id: "ready"}


# --- events ------------------------------------------------------------------------------------------


async def test_a_paid_event_is_assigned_once_however_often_it_comes(db: Database, orders: FakeOrders) -> None:
    point = await add_point(db, NEAR)
    paid = order()
    event = envelope("paid", paid)

    assert await deliver(db, event)
    assert not await deliver(db, event)  # the inbox drops the redelivery
    assert await deliver(db, envelope("paid", paid))  # a second event id for the same fact
    await assigner(db, orders).run_pass()
    assert await deliver(db, envelope("paid", paid))  # after assignment: no new pending row

    assert await pending_ids(db) == set()
    assert await states(db) == {paid.order_id: "confirmed"}
    assert (await point_state(db, point))[0] == 1


async def test_a_cancelled_order_gives_back_its_slot_and_ingredients(
    db: Database, orders: FakeOrders
) -> None:
    point = await add_point(db, NEAR, capacity=1)
    paid = order(quantity=5)
    await deliver(db, envelope("paid", paid))
    await assigner(db, orders).run_pass()
    assert await point_state(db, point) == (1, {"bread": 90, "ham": 95})

    await deliver(db, envelope("cancelled", paid, point))
    await deliver(db, envelope("cancelled", paid, point))

    assert await point_state(db, point) == (0, {"bread": 100, "ham": 100})
    assert await states(db) == {paid.order_id: "released"}


async def test_a_cancelled_waiting_order_is_forgotten(db: Database, orders: FakeOrders) -> None:
    paid = order()
    await deliver(db, envelope("paid", paid))
    await deliver(db, envelope("cancelled", paid))
    await add_point(db, NEAR)

    report = await assigner(db, orders).run_pass()

    assert report.assigned == 0 and await pending_ids(db) == set()


async def test_an_assigned_event_confirms_a_reservation(db: Database, orders: FakeOrders) -> None:
    point = await add_point(db, NEAR)
    paid = order()
    await add_pending(db, paid)
    orders.down = True
    await assigner(db, orders).run_pass()
    assert await states(db) == {paid.order_id: "reserved"}

    await deliver(db, envelope("assigned", paid, point))
    assert await states(db) == {paid.order_id: "confirmed"}


async def test_notify_on_commit_wakes_the_assigner(db: Database, orders: FakeOrders) -> None:
    kitchen = assigner(db, orders)
    listener = asyncio.create_task(kitchen.listen())
    try:
        await asyncio.wait_for(kitchen.waker.event.wait(), 5)  # the wake-up on (re)connecting
        kitchen.waker.event.clear()
        await asyncio.sleep(0.2)
        await deliver(db, envelope("paid", order()))
        await asyncio.wait_for(kitchen.waker.event.wait(), 5)
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener


# --- orders' answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 409])
async def test_a_refused_assignment_is_given_back(db: Database, orders: FakeOrders, status: int) -> None:
    point = await add_point(db, NEAR, capacity=1)
    paid = order()
    await add_pending(db, paid)
    orders.status = status

    report = await assigner(db, orders).run_pass()

    assert (report.assigned, report.released) == (1, 1)
    assert await states(db) == {paid.order_id: "released"}
    assert await point_state(db, point) == (0, {"bread": 100, "ham": 100})


async def test_unconfirmed_reservations_are_retried_until_orders_answers(
    db: Database, orders: FakeOrders
) -> None:
    point = await add_point(db, NEAR)
    paid = order()
    await add_pending(db, paid)
    kitchen = assigner(db, orders)
    orders.down = True
    await kitchen.run_pass()
    await kitchen.run_pass()
    assert await states(db) == {paid.order_id: "reserved"}
    assert (await point_state(db, point))[0] == 1  # held while orders is away

    orders.down = False
    report = await kitchen.run_pass()

    assert report.confirmed == 1
    assert await states(db) == {paid.order_id: "confirmed"}
    assert orders.of("assigned") == [("assigned", paid.order_id, point)]


async def test_a_timed_out_order_is_cancelled_through_orders(db: Database, orders: FakeOrders) -> None:
    await add_point(db, NEAR, stock={})  # nobody has the ingredients
    late, fresh = order(paid_ago=120), order()
    await add_pending(db, late, fresh)
    kitchen = assigner(db, orders, timeout=60)

    orders.down = True
    report = await kitchen.run_pass()
    assert (report.expired, report.cancelled, report.waiting) == (1, 0, 1)
    assert await pending_ids(db) == {late.order_id, fresh.order_id}  # kept until orders answers

    orders.down = False
    report = await kitchen.run_pass()
    assert report.cancelled == 1
    assert orders.of("cancelled") == [("cancelled", late.order_id, NO_FOOD_POINT_IN_TIME)]
    assert await pending_ids(db) == {fresh.order_id}


async def test_a_late_order_that_can_be_placed_is_placed_not_cancelled(
    db: Database, orders: FakeOrders
) -> None:
    point = await add_point(db, NEAR)
    late = order(paid_ago=3600)
    await add_pending(db, late)

    await assigner(db, orders, timeout=60).run_pass()

    assert orders.of("assigned") == [("assigned", late.order_id, point)]
    assert orders.of("cancelled") == []


async def test_an_order_with_an_unknown_item_waits_then_times_out(db: Database, orders: FakeOrders) -> None:
    await add_point(db, NEAR)
    ghost = order(menu_item_id=str(uuid.UUID(int=99)), paid_ago=120)
    await add_pending(db, ghost)
    orders.status = 409  # e.g. the customer cancelled meanwhile: the row goes all the same

    report = await assigner(db, orders, timeout=60).run_pass()

    assert (report.assigned, report.expired, report.cancelled) == (0, 1, 1)
    assert await pending_ids(db) == set()


async def test_an_order_of_items_without_ingredients_needs_only_a_slot(
    db: Database, orders: FakeOrders
) -> None:
    point = await add_point(db, NEAR, stock={})
    await add_pending(db, order(menu_item_id=WATER))

    await assigner(db, orders).run_pass()

    assert (await point_state(db, point))[0] == 1
