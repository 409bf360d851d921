"""The relevance tests consumers run before the inbox: skip what cannot matter, never a malformed event."""

from __future__ import annotations

from typing import Any

import pytest

from sandwich.platform.events import ORDER_EVENT, ORDER_UPDATE_MESSAGE, Envelope, carries_order_status
from sandwich.services.basket.handlers import concerns_basket
from sandwich.services.delivery.handlers import concerns_delivery
from sandwich.services.kitchen.handlers import concerns_kitchen
from sandwich.services.notifications.handlers import concerns_notifications

pytestmark = pytest.mark.unit


def envelope(status: Any, *, type_: str = ORDER_EVENT, **order: Any) -> Envelope:
    payload: dict[str, Any] = {"status": status, "order": order}
    return Envelope(type=type_, producer="orders", key="order-1", payload=payload)


def test_carries_order_status_matches_type_and_status() -> None:
    assert carries_order_status(envelope("paid"), {"paid"})
    assert not carries_order_status(envelope("created"), {"paid"})
    assert not carries_order_status(envelope("paid", type_="UserCreated"), {"paid"})
    assert carries_order_status(
        envelope("paid", type_=ORDER_UPDATE_MESSAGE), {"paid"}, types=[ORDER_UPDATE_MESSAGE]
    )


@pytest.mark.parametrize("status", [None, 42, ["paid"]])
def test_an_event_without_a_readable_status_reaches_the_handler(status: Any) -> None:
    # The handler validates it and rejects it, so that it ends on the dead-letter topic.
    for wants in (concerns_kitchen, concerns_delivery, concerns_notifications):
        assert wants(envelope(status))


@pytest.mark.parametrize(
    ("wants", "wanted", "unwanted"),
    [
        (
            concerns_kitchen,
            ["paid", "assigned", "cancelled", "ready", "completed"],
            ["created", "payment_failed"],
        ),
        (
            concerns_delivery,
            ["ready", "in_delivery", "completed"],
            ["created", "paid", "assigned", "cancelled"],
        ),
        (concerns_notifications, ["paid", "payment_failed", "cancelled", "completed"], ["created", "ready"]),
    ],
)
def test_each_consumer_takes_only_its_statuses(wants: Any, wanted: list[str], unwanted: list[str]) -> None:
    assert all(wants(envelope(status)) for status in wanted)
    assert not any(wants(envelope(status)) for status in unwanted)


def test_basket_takes_only_paid_orders_placed_from_the_basket() -> None:
    assert concerns_basket(envelope("paid", from_basket=True))
    assert not concerns_basket(envelope("paid", from_basket=False))
    assert not concerns_basket(envelope("created", from_basket=True))
    assert concerns_basket(envelope("paid"))  # unknown: the handler decides
