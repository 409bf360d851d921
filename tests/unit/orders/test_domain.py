from datetime import UTC, datetime

import pytest

from sandwich.services.orders.domain import (
    TRANSITIONS,
    AlreadyTaken,
    Delivery,
    IllegalTransition,
    NotYourDelivery,
    NotYourFoodPoint,
    Order,
    OrderLine,
    OrderStatus,
    UnknownMenuItem,
    assigned,
    cooked,
    delivered,
    price_lines,
    taken,
)

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def new_order() -> Order:
    return Order(
        order_id="o1",
        user_id="u1",
        username="alice",
        status=OrderStatus.CREATED,
        items=(OrderLine("m1", "Club", 1, 100),),
        total=100,
        delivery=Delivery("street", 55.0, 37.0),
        created_at=NOW,
        updated_at=NOW,
    )


def test_happy_path_walks_every_status_and_counts_versions() -> None:
    order = new_order()
    for status in ("paid", "assigned", "ready", "in_delivery", "completed"):
        order = order.transition(OrderStatus(status), NOW)
    assert order.status is OrderStatus.COMPLETED
    assert order.version == 6


@pytest.mark.parametrize(
    ("start", "wanted"),
    [
        ("created", "assigned"),
        ("paid", "ready"),
        ("assigned", "in_delivery"),
        ("ready", "cancelled"),
        ("completed", "cancelled"),
        ("payment_failed", "paid"),
        ("cancelled", "paid"),
    ],
)
def test_illegal_transitions_are_refused(start: str, wanted: str) -> None:
    order = new_order()
    order = Order(**{**order.__dict__, "status": OrderStatus(start)})
    with pytest.raises(IllegalTransition):
        order.transition(OrderStatus(wanted), NOW)


def test_cancel_allowed_exactly_from_created_paid_assigned() -> None:
    allowed = {s for s, nexts in TRANSITIONS.items() if OrderStatus.CANCELLED in nexts}
    assert allowed == {OrderStatus.CREATED, OrderStatus.PAID, OrderStatus.ASSIGNED}


def test_terminal_statuses_have_no_way_out() -> None:
    for status in (OrderStatus.COMPLETED, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED):
        assert TRANSITIONS[status] == frozenset()


def test_prices_come_from_the_menu_and_repeated_lines_merge() -> None:
    menu = {"a": ("Club", 35000), "b": ("BLT", 29000)}
    lines, total = price_lines([("a", 1), ("b", 2), ("a", 2)], menu)
    assert [(line.menu_item_id, line.quantity, line.price) for line in lines] == [
        ("a", 3, 35000),
        ("b", 2, 29000),
    ]
    assert total == 3 * 35000 + 2 * 29000


def test_unknown_menu_item_is_refused() -> None:
    with pytest.raises(UnknownMenuItem) as caught:
        price_lines([("zzz", 1)], {"a": ("Club", 1)})
    assert caught.value.menu_item_id == "zzz"


def paid_order() -> Order:
    return new_order().transition(OrderStatus.PAID, NOW)


def test_fulfilment_runs_assigned_cooked_taken_delivered_and_records_who() -> None:
    order = delivered(taken(cooked(assigned(paid_order(), "fp1", NOW), "fp1", NOW), "ann", NOW), "ann", NOW)
    assert (order.status, order.food_point_id, order.courier) == (OrderStatus.COMPLETED, "fp1", "ann")


def test_each_step_repeated_by_the_same_actor_changes_nothing() -> None:
    at_point = assigned(paid_order(), "fp1", NOW)
    assert assigned(at_point, "fp1", NOW) is at_point
    ready = cooked(at_point, "fp1", NOW)
    assert cooked(ready, "fp1", NOW) is ready
    on_the_way = taken(ready, "ann", NOW)
    assert taken(on_the_way, "ann", NOW) is on_the_way
    done = delivered(on_the_way, "ann", NOW)
    assert delivered(done, "ann", NOW) is done


def test_another_food_point_or_courier_is_refused() -> None:
    at_point = assigned(paid_order(), "fp1", NOW)
    with pytest.raises(NotYourFoodPoint):
        cooked(at_point, "fp2", NOW)
    on_the_way = taken(cooked(at_point, "fp1", NOW), "ann", NOW)
    with pytest.raises(AlreadyTaken):
        taken(on_the_way, "bob", NOW)
    with pytest.raises(NotYourDelivery):
        delivered(on_the_way, "bob", NOW)


def test_a_step_out_of_order_is_an_illegal_transition() -> None:
    with pytest.raises(IllegalTransition):
        taken(assigned(paid_order(), "fp1", NOW), "ann", NOW)  # not cooked yet
    with pytest.raises(IllegalTransition):
        assigned(new_order(), "fp1", NOW)  # not paid yet
