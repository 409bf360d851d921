"""Delivery's use cases through the in-memory unit of work: exactly one courier holds an order, a
repeat changes nothing, a take orders refuses is undone, only the courier who took it completes it,
order events apply once and in version order, and a refused command commits nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sandwich.services.delivery.commands import (
    CompleteOrder,
    TakeOrder,
    apply_order_update,
    complete_order,
    fill_missing_pickups,
    list_offers,
    list_own,
    take_order,
)
from sandwich.services.delivery.domain import (
    AlreadyCompleted,
    AlreadyTaken,
    DeliveryRefused,
    DeliveryStatus,
    DeliveryUpdate,
    NotReady,
    NotYourDelivery,
    OrderNotFound,
    Pickup,
    Position,
)
from sandwich.services.delivery.ports import OrdersAnswerMalformed, OrdersUnavailable
from tests.unit.delivery.fakes import FakeDeliveryUnitOfWork, FakeFoodPoints, FakeOrders

pytestmark = pytest.mark.unit

ORDER = uuid.UUID("00000000-0000-4000-8000-000000000001")
ARBAT = Pickup(55.75, 37.59, "Arbat 2")


def order_event(order_id: uuid.UUID, status: str, courier: str | None, food_point_id: str) -> dict[str, Any]:
    return {
        "status": status,
        "at": "2026-03-01T11:00:00Z",
        "order": {
            "order_id": str(order_id),
            "items": [{"menu_item_id": "m1", "name": "BLT", "quantity": 1, "price": 34900}],
            "total": 34900,
            "delivery": {"address": "Tverskaya 1", "lat": 55.76, "lon": 37.61},
            "food_point_id": food_point_id,
            "courier": courier,
        },
    }


def update(
    version: int,
    status: str = "ready",
    courier: str | None = None,
    *,
    order_id: uuid.UUID = ORDER,
    food_point_id: str = "fp-1",
) -> DeliveryUpdate:
    result = DeliveryUpdate.from_event(version, order_event(order_id, status, courier, food_point_id))
    assert result is not None
    return result


@pytest.fixture
def uow() -> FakeDeliveryUnitOfWork:
    return FakeDeliveryUnitOfWork()


@pytest.fixture
def orders() -> FakeOrders:
    return FakeOrders()


async def offered(uow: FakeDeliveryUnitOfWork, order_id: uuid.UUID = ORDER, **kwargs: Any) -> None:
    """A cooked order, ready for couriers (its event applied), the unit's counters reset."""
    assert await apply_order_update(
        update(4, order_id=order_id, **kwargs), uow, FakeFoodPoints({"fp-1": ARBAT})
    )
    uow.commits = uow.rollbacks = 0


async def taken_by(uow: FakeDeliveryUnitOfWork, orders: FakeOrders, courier: str) -> None:
    await offered(uow)
    await take_order(TakeOrder(ORDER, courier), uow, orders)
    uow.commits = uow.rollbacks = 0
    orders.calls.clear()


def row(uow: FakeDeliveryUnitOfWork) -> tuple[DeliveryStatus, str | None]:
    delivery = uow.deliveries.rows[str(ORDER)]
    return delivery.status, delivery.courier


# --- take --------------------------------------------------------------------------------------------


async def test_a_courier_takes_a_cooked_order_and_orders_confirms_it(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    await offered(uow)
    answer = await take_order(TakeOrder(ORDER, "bob"), uow, orders)
    assert answer == {"order_id": str(ORDER), "status": "in_delivery", "courier": "bob"}
    assert row(uow) == (DeliveryStatus.IN_DELIVERY, "bob")
    assert orders.calls == [("take", str(ORDER), "bob")]
    assert uow.commits == 1  # committed before orders was asked
    assert uow.announced == []  # orders announces the change, not delivery


async def test_another_courier_cannot_take_an_order_already_taken(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    await taken_by(uow, orders, "bob")
    with pytest.raises(AlreadyTaken) as refused:
        await take_order(TakeOrder(ORDER, "eve"), uow, orders)
    assert refused.value.code == "already_taken"
    assert row(uow) == (DeliveryStatus.IN_DELIVERY, "bob")
    assert orders.calls == []  # orders is not bothered with a lost race
    assert uow.commits == 0


async def test_a_repeated_take_by_the_same_courier_answers_the_order_again_and_changes_nothing(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    await taken_by(uow, orders, "bob")
    before = dict(uow.deliveries.rows)
    answer = await take_order(TakeOrder(ORDER, "bob"), uow, orders)
    assert answer["courier"] == "bob"
    assert orders.calls == [("take", str(ORDER), "bob")]  # orders' take is idempotent
    assert uow.deliveries.rows == before
    assert uow.commits == 0


async def test_a_delivered_order_cannot_be_taken(uow: FakeDeliveryUnitOfWork, orders: FakeOrders) -> None:
    await taken_by(uow, orders, "bob")
    await complete_order(CompleteOrder(ORDER, "bob"), uow, orders)
    with pytest.raises(AlreadyCompleted):
        await take_order(TakeOrder(ORDER, "bob"), uow, orders)


@pytest.mark.parametrize(
    "failure",
    [DeliveryRefused("The order is cancelled.", code="illegal_transition"), OrdersUnavailable("timeout")],
    ids=["refused", "unavailable"],
)
async def test_a_take_orders_does_not_confirm_is_undone(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders, failure: Exception
) -> None:
    await offered(uow)
    orders.failure = failure  # type: ignore[assignment]
    with pytest.raises(type(failure)) as raised:
        await take_order(TakeOrder(ORDER, "bob"), uow, orders)
    assert raised.value is failure  # orders' own code and message reach the courier
    assert row(uow) == (DeliveryStatus.READY, None)  # offered again
    assert uow.commits == 2  # the take, then its undoing


async def test_a_take_orders_accepted_with_a_garbled_answer_is_kept(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    await offered(uow)
    orders.failure = OrdersAnswerMalformed("not an order")
    with pytest.raises(OrdersUnavailable):
        await take_order(TakeOrder(ORDER, "bob"), uow, orders)
    assert row(uow) == (DeliveryStatus.IN_DELIVERY, "bob")  # orders' in_delivery event will confirm it


@pytest.mark.parametrize(
    ("write_side", "refusal"),
    [(None, OrderNotFound), ("paid", NotReady), ("ready", NotReady), ("in_delivery", AlreadyTaken)],
)
async def test_an_order_delivery_has_not_seen_is_explained_by_orders(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders, write_side: str | None, refusal: type[DeliveryRefused]
) -> None:
    if write_side is not None:
        orders.statuses[str(ORDER)] = write_side
    with pytest.raises(refusal):
        await take_order(TakeOrder(ORDER, "bob"), uow, orders)
    assert orders.calls == [("status_of", str(ORDER), None)]
    assert uow.deliveries.rows == {} and uow.commits == 0


async def test_an_unseen_order_is_not_found_when_orders_is_away(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    orders.failure = OrdersUnavailable("connection refused")
    with pytest.raises(OrderNotFound):
        await take_order(TakeOrder(ORDER, "bob"), uow, orders)


# --- complete ----------------------------------------------------------------------------------------


async def test_the_courier_who_took_it_completes_the_delivery(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    await taken_by(uow, orders, "bob")
    answer = await complete_order(CompleteOrder(ORDER, "bob"), uow, orders)
    assert answer["status"] == "completed"
    assert orders.calls == [("complete", str(ORDER), "bob")]
    assert row(uow) == (DeliveryStatus.COMPLETED, "bob")
    assert uow.deliveries.rows[str(ORDER)].completed_at is not None
    assert uow.commits == 1


async def test_completing_again_asks_orders_again_and_changes_nothing(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    await taken_by(uow, orders, "bob")
    await complete_order(CompleteOrder(ORDER, "bob"), uow, orders)
    before, commits = dict(uow.deliveries.rows), uow.commits
    answer = await complete_order(CompleteOrder(ORDER, "bob"), uow, orders)
    assert answer["status"] == "completed"
    assert uow.deliveries.rows == before and uow.commits == commits


async def test_completing_someone_elses_delivery_is_refused_and_commits_nothing(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    await taken_by(uow, orders, "bob")
    with pytest.raises(NotYourDelivery):
        await complete_order(CompleteOrder(ORDER, "eve"), uow, orders)
    assert orders.calls == []
    assert row(uow) == (DeliveryStatus.IN_DELIVERY, "bob") and uow.commits == 0


async def test_completing_before_taking_is_refused(uow: FakeDeliveryUnitOfWork, orders: FakeOrders) -> None:
    await offered(uow)
    with pytest.raises(NotYourDelivery):
        await complete_order(CompleteOrder(ORDER, "bob"), uow, orders)
    with pytest.raises(OrderNotFound):
        await complete_order(CompleteOrder(uuid.uuid4(), "bob"), uow, orders)
    assert orders.calls == [] and row(uow) == (DeliveryStatus.READY, None) and uow.commits == 0


async def test_a_completion_orders_refuses_leaves_the_delivery_on_the_way(
    uow: FakeDeliveryUnitOfWork, orders: FakeOrders
) -> None:
    await taken_by(uow, orders, "bob")
    orders.failure = NotYourDelivery("Not yours.", code="not_your_delivery")
    with pytest.raises(NotYourDelivery):
        await complete_order(CompleteOrder(ORDER, "bob"), uow, orders)
    assert row(uow) == (DeliveryStatus.IN_DELIVERY, "bob") and uow.commits == 0


# --- order events, offers and pickups ------------------------------------------------------------------


async def test_order_events_apply_once_and_in_version_order(uow: FakeDeliveryUnitOfWork) -> None:
    kitchen = FakeFoodPoints({"fp-1": ARBAT})
    assert await apply_order_update(update(4), uow, kitchen)
    assert uow.deliveries.rows[str(ORDER)].pickup == ARBAT  # kitchen asked for a ready order
    assert await apply_order_update(update(5, "in_delivery", "bob"), uow, kitchen)
    assert not await apply_order_update(update(5, "in_delivery", "bob"), uow, kitchen)  # repeated
    assert not await apply_order_update(update(4), uow, kitchen)  # older, late
    assert row(uow) == (DeliveryStatus.IN_DELIVERY, "bob")
    assert kitchen.asked == ["fp-1", "fp-1"]  # only for ready events


async def test_offers_are_nearest_first_and_unknown_pickups_are_filled_in(
    uow: FakeDeliveryUnitOfWork,
) -> None:
    near, far = uuid.uuid4(), uuid.uuid4()
    await offered(uow, far, food_point_id="fp-far")  # kitchen cannot tell fp-far yet
    await offered(uow, near)
    kitchen = FakeFoodPoints({"fp-1": ARBAT, "fp-far": Pickup(59.93, 30.33)})
    offers = await list_offers(Position(55.75, 37.6), 10, uow, kitchen)
    assert [offer.delivery.order_id for offer in offers] == [str(near), str(far)]
    assert offers[0].distance_km is not None and offers[0].distance_km < offers[1].distance_km  # type: ignore[operator]
    assert kitchen.asked == ["fp-far"] and uow.commits == 1  # the pickup learnt is stored
    assert uow.deliveries.rows[str(far)].pickup == Pickup(59.93, 30.33)


async def test_a_courier_sees_their_own_deliveries(uow: FakeDeliveryUnitOfWork, orders: FakeOrders) -> None:
    await taken_by(uow, orders, "bob")
    assert [offer.delivery.order_id for offer in await list_own("bob", 10, uow)] == [str(ORDER)]
    assert await list_own("eve", 10, uow) == []


async def test_the_job_fills_in_pickups_kitchen_can_tell_now(uow: FakeDeliveryUnitOfWork) -> None:
    await offered(uow, food_point_id="fp-2")  # kitchen did not know fp-2 then
    assert uow.deliveries.rows[str(ORDER)].pickup is None
    await fill_missing_pickups(uow, FakeFoodPoints({"fp-2": ARBAT}))
    assert uow.deliveries.rows[str(ORDER)].pickup == ARBAT
    await fill_missing_pickups(uow, FakeFoodPoints())  # nothing missing: nothing asked, nothing written
    assert uow.commits == 1
