"""Orders' use cases through the in-memory unit of work: placing (priced from the menu, paid or
refused, idempotent), the payment that lands after a cancel (refunded), repeats, wrong owners,
steps out of order, and the async style's accept-then-settle, with what each announces."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sandwich.platform.events import (
    ORDER_EVENT,
    ORDER_PENDING,
    ORDER_UPDATE_MESSAGE,
    TOPIC_NOTIFICATIONS_ORDERS,
    TOPIC_ORDER_EVENTS,
    TOPIC_ORDERS_PENDING,
    utcnow,
)
from sandwich.platform.idempotency import IdempotencyKeyReused, StoredAnswer
from sandwich.services.orders.commands import (
    EmptyBasket,
    OrderNotFound,
    Placed,
    PlaceOrder,
    Repeated,
    RequestInProgress,
    apply_change,
    cancel_for_customer,
    cancelling,
    place_order,
    replay,
    retry_pending_payments,
    retry_pending_refunds,
    settle_payment,
    settle_verdict,
    store_order_request,
)
from sandwich.services.orders.domain import (
    AlreadyTaken,
    Delivery,
    IllegalTransition,
    NotYourFoodPoint,
    OrderStatus,
    UnknownMenuItem,
    assigned,
    cooked,
    taken,
)
from sandwich.services.orders.ports import PricesUnavailable
from tests.unit.orders.fakes import World, world

pytestmark = pytest.mark.unit

ALICE = "00000000-0000-0000-0000-00000000000a"
BOB = "00000000-0000-0000-0000-00000000000b"
HOME = Delivery("Tverskaya 1", 55.76, 37.61)


def order_of(
    user: str = ALICE, lines: list[tuple[str, int]] | None = None, key: str | None = None
) -> PlaceOrder:
    return PlaceOrder(
        user_id=user,
        username="alice" if user == ALICE else "bob",
        lines=[("club", 2)] if lines is None else lines,
        delivery=HOME,
        idempotency_key=key,
        request_hash=f"hash-{lines}",
    )


async def placed(w: World, command: PlaceOrder) -> Placed:
    result = await place_order(command, w.uow, w.ports)
    assert isinstance(result, Placed)
    return result


async def test_an_order_is_priced_from_the_menu_paid_and_both_changes_announced() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    result = await placed(w, order_of())
    assert result.accepted is False
    assert result.order.status is OrderStatus.PAID
    assert result.order.total == 900 and result.order.items[0].price == 450
    assert w.payments.balances[ALICE] == 100
    assert [e.kind for e in w.uow.announced] == ["created", "paid"]
    assert {e.topic for e in w.uow.announced} == {TOPIC_ORDER_EVENTS}
    assert w.uow.orders.history_of[result.order.order_id] == ["created", "paid"]


async def test_not_enough_money_fails_the_payment_and_keeps_the_order() -> None:
    w = world()
    w.payments.balances[ALICE] = 899
    result = await placed(w, order_of())
    assert result.order.status is OrderStatus.PAYMENT_FAILED
    assert w.payments.balances[ALICE] == 899
    assert w.uow.announced_types() == [ORDER_EVENT, ORDER_EVENT]


async def test_billing_away_leaves_the_order_created_for_the_retry_job() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    w.payments.away = True
    result = await placed(w, order_of())
    assert result.order.status is OrderStatus.CREATED
    w.payments.away = False
    await retry_pending_payments(w.uow, w.ports)
    assert w.uow.orders.rows[result.order.order_id].status is OrderStatus.PAID
    assert w.payments.charged == [result.order.order_id]


async def test_an_unknown_menu_item_or_an_empty_basket_places_nothing() -> None:
    w = world()
    with pytest.raises(UnknownMenuItem):
        await place_order(order_of(lines=[("caviar", 1)]), w.uow, w.ports)
    with pytest.raises(EmptyBasket):
        await place_order(order_of(lines=[]), w.uow, w.ports)
    w.prices.away = True
    with pytest.raises(PricesUnavailable):
        await place_order(order_of(), w.uow, w.ports)
    assert w.uow.orders.rows == {} and w.uow.announced == [] and w.uow.commits == 0


async def test_without_lines_the_basket_is_ordered() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    w.basket.baskets[ALICE] = [("blt", 3)]
    result = await placed(w, replace(order_of(), lines=None))
    assert result.order.from_basket is True
    assert [(line.menu_item_id, line.quantity) for line in result.order.items] == [("blt", 3)]
    assert result.order.total == 900


async def test_a_repeated_request_replays_the_first_answer_and_charges_once() -> None:
    w = world()
    w.payments.balances[ALICE] = 10_000
    first = await placed(w, order_of(key="k-1"))
    again = await place_order(order_of(key="k-1"), w.uow, w.ports)
    assert isinstance(again, Repeated)
    assert again.answer.status_code == 201
    assert again.answer.body["order_id"] == first.order.order_id
    assert again.answer.body["status"] == "paid"
    assert len(w.uow.orders.rows) == 1 and w.payments.charged == [first.order.order_id]


async def test_the_same_key_with_another_body_is_refused() -> None:
    w = world()
    w.payments.balances[ALICE] = 10_000
    await placed(w, order_of(key="k-1"))
    with pytest.raises(IdempotencyKeyReused):
        await place_order(order_of(key="k-1", lines=[("blt", 1)]), w.uow, w.ports)
    assert len(w.uow.orders.rows) == 1


async def test_a_repeat_while_the_first_has_no_answer_waits_then_gives_the_order_or_in_progress() -> None:
    w = world()
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)

    command = order_of(key="k-2")
    with pytest.raises(RequestInProgress):
        await replay(command, StoredAnswer(None, None, None), w.uow, sleep=nap)
    assert len(naps) == 100
    w.payments.balances[ALICE] = 1000
    first = await placed(w, order_of(key="other"))
    result = await replay(command, StoredAnswer(None, None, first.order.order_id), w.uow, sleep=nap)
    assert isinstance(result, Placed) and result.order.order_id == first.order.order_id


async def test_a_payment_that_lands_after_the_cancel_is_refunded() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    w.payments.away = True
    order = (await placed(w, order_of())).order
    await cancel_for_customer(order.order_id, ALICE, False, w.uow, w.ports)
    w.payments.away = False
    settled = await settle_payment(order, w.uow, w.ports)  # billing charges the created order late
    assert settled.status is OrderStatus.CANCELLED
    assert w.uow.orders.rows[order.order_id].refund_pending is True
    await retry_pending_refunds(w.uow, w.ports)
    assert w.refunds.refunded == [order.order_id]
    assert w.uow.orders.rows[order.order_id].refund_pending is False


async def test_cancelling_a_paid_order_refunds_it_in_the_background() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    order = (await placed(w, order_of())).order
    cancelled = await cancel_for_customer(order.order_id, ALICE, False, w.uow, w.ports)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.refund_pending
    assert await w.spawned.run_all() == [f"refund-{order.order_id}"]
    assert w.refunds.refunded == [order.order_id]
    assert w.uow.orders.rows[order.order_id].refund_pending is False


async def test_another_customers_order_cannot_be_cancelled_but_an_admin_can() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    order = (await placed(w, order_of())).order
    with pytest.raises(OrderNotFound):
        await cancel_for_customer(order.order_id, BOB, False, w.uow, w.ports)
    assert w.uow.orders.rows[order.order_id].status is OrderStatus.PAID
    done = await cancel_for_customer(order.order_id, BOB, True, w.uow, w.ports)
    assert done.status is OrderStatus.CANCELLED


async def test_a_repeated_cancel_changes_nothing_and_announces_nothing() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    order = (await placed(w, order_of())).order
    await cancel_for_customer(order.order_id, ALICE, False, w.uow, w.ports)
    announced = len(w.uow.announced)
    again = await cancel_for_customer(order.order_id, ALICE, False, w.uow, w.ports)
    assert again.status is OrderStatus.CANCELLED and len(w.uow.announced) == announced


async def test_fulfilment_steps_check_their_owner_and_order() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    order_id = (await placed(w, order_of())).order.order_id
    with pytest.raises(IllegalTransition):  # taken before it was cooked
        await apply_change(order_id, lambda o: taken(o, "courier-1", utcnow()), w.uow, w.ports)
    await apply_change(order_id, lambda o: assigned(o, "fp-1", utcnow()), w.uow, w.ports)
    again = await apply_change(order_id, lambda o: assigned(o, "fp-1", utcnow()), w.uow, w.ports)
    assert again.version == w.uow.orders.rows[order_id].version  # a repeat writes nothing
    with pytest.raises(NotYourFoodPoint):
        await apply_change(order_id, lambda o: cooked(o, "fp-2", utcnow()), w.uow, w.ports)
    await apply_change(order_id, lambda o: cooked(o, "fp-1", utcnow()), w.uow, w.ports)
    await apply_change(order_id, lambda o: taken(o, "courier-1", utcnow()), w.uow, w.ports)
    with pytest.raises(AlreadyTaken):
        await apply_change(order_id, lambda o: taken(o, "courier-2", utcnow()), w.uow, w.ports)
    with pytest.raises(IllegalTransition):
        await apply_change(order_id, cancelling("too late"), w.uow, w.ports)
    assert w.uow.orders.history_of[order_id] == ["created", "paid", "assigned", "ready", "in_delivery"]


async def test_a_change_that_lost_the_race_is_decided_again_on_the_locked_row() -> None:
    w = world()
    w.payments.balances[ALICE] = 1000
    order_id = (await placed(w, order_of())).order.order_id
    w.uow.orders.lose_next_race(order_id)
    moved = await apply_change(order_id, lambda o: assigned(o, "fp-1", utcnow()), w.uow, w.ports)
    assert moved.status is OrderStatus.ASSIGNED
    assert w.uow.orders.rows[order_id].food_point_id == "fp-1"


async def test_a_missing_order_is_not_found() -> None:
    w = world()
    with pytest.raises(OrderNotFound):
        await apply_change("nope", cancelling("x"), w.uow, w.ports)


async def test_by_events_the_order_is_accepted_and_asks_billing_by_an_event() -> None:
    w = world(by_events=True)
    result = await placed(w, order_of(key="k-9"))
    assert result.accepted is True and result.order.status is OrderStatus.CREATED
    assert w.payments.charged == []  # nothing asked over HTTP
    assert [(e.topic, e.envelope.type) for e in w.uow.announced] == [
        (TOPIC_ORDER_EVENTS, ORDER_EVENT),
        (TOPIC_NOTIFICATIONS_ORDERS, ORDER_UPDATE_MESSAGE),
        (TOPIC_ORDERS_PENDING, ORDER_PENDING),
    ]
    repeat = await place_order(order_of(key="k-9"), w.uow, w.ports)
    assert isinstance(repeat, Repeated) and repeat.answer.status_code == 202


async def test_a_verdict_settles_the_order_and_a_late_one_after_a_cancel_asks_a_refund() -> None:
    w = world(by_events=True)
    first = (await placed(w, order_of())).order
    async with w.uow:
        await settle_verdict(first.order_id, True, "op-1", w.uow, w.ports)
    assert w.uow.orders.rows[first.order_id].status is OrderStatus.PAID
    second = (await placed(w, order_of())).order
    await cancel_for_customer(second.order_id, ALICE, False, w.uow, w.ports)
    async with w.uow:
        await settle_verdict(second.order_id, True, "op-2", w.uow, w.ports)
    assert w.uow.orders.rows[second.order_id].refund_pending is True


async def test_a_request_published_twice_stores_one_order() -> None:
    w = world(by_events=True)
    order = (await placed(w, order_of())).order
    before = len(w.uow.announced)
    async with w.uow:
        await store_order_request(order, "hash", w.uow, w.ports)
    assert len(w.uow.orders.rows) == 1 and len(w.uow.announced) == before
