"""The outside world as orders needs it: prices from menu, payments and refunds from billing, the
basket, and the events that announce an order's changes.

Adapters are picked in app.py; commands never ask which interaction style runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sandwich.platform.events import (
    ORDER_EVENT,
    ORDER_PENDING,
    ORDER_UPDATE_MESSAGE,
    TOPIC_NOTIFICATIONS_ORDERS,
    TOPIC_ORDER_EVENTS,
    TOPIC_ORDERS_PENDING,
    Envelope,
    OrderEvent,
    OrderPending,
    rfc3339,
)
from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.platform.outbox import Event
from sandwich.services.orders.domain import Order, OrderStatus
from sandwich.services.orders.storage import order_view

EnvelopeMaker = Callable[[str, str, dict[str, object], int], Envelope]
"""`Service.envelope`: an event's envelope, with this service as producer and the trace context."""


class PricesUnavailable(Exception):
    pass


@dataclass(frozen=True)
class PaymentOutcome:
    """paid is None when billing could not be asked: the order stays created and is retried."""

    paid: bool | None
    operation_id: str | None = None


class Payments(Protocol):
    settles_later: bool
    """True when billing hears of a new order by an event (OrderPending) and answers by one: placing
    the order only accepts it, and nothing is asked now (ADR 002)."""

    async def pay(self, order: Order) -> PaymentOutcome: ...


class PaymentsByEvents:
    """ADR 002: the order's OrderPending event asks billing to pay; its verdict comes back as an event."""

    settles_later = True

    async def pay(self, order: Order) -> PaymentOutcome:
        return PaymentOutcome(paid=None)


class Prices(Protocol):
    async def lookup(self, menu_item_ids: list[str]) -> dict[str, tuple[str, int]]:
        """Name and price of each known menu item; PricesUnavailable when the menu cannot be read."""
        ...


class Basket(Protocol):
    async def lines(self, user_id: str) -> list[tuple[str, int]]:
        """The customer's basket lines; BasketUnavailable when it cannot be read."""
        ...


class MenuPrices:
    """Names and prices of menu items from menu, cached briefly: prices come from the menu, always."""

    def __init__(self, http: ServiceClient, ttl_seconds: float = 2.0):
        self.http = http
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[float, tuple[str, int]]] = {}

    async def lookup(self, menu_item_ids: list[str]) -> dict[str, tuple[str, int]]:
        now = time.monotonic()
        found = {
            i: hit[1]
            for i in menu_item_ids
            if (hit := self._cache.get(i)) and now - hit[0] < self.ttl_seconds
        }
        missing = [i for i in menu_item_ids if i not in found]
        if missing:
            try:
                answer = await self.http.request(
                    "menu", "GET", "/internal/v1/menu/items", params={"ids": ",".join(missing)}
                )
            except ServiceUnavailable as exc:
                raise PricesUnavailable(str(exc)) from exc
            if not answer.ok:
                raise PricesUnavailable(f"menu answered {answer.status}")
            for item in answer.body["items"]:
                entry = (item["name"], int(item["price"]))
                self._cache[item["id"]] = (now, entry)
                found[item["id"]] = entry
        return found


class HttpPayments:
    """Pays through billing's operate call (ADR 001/003); the key makes a retry charge once."""

    settles_later = False

    def __init__(self, http: ServiceClient):
        self.http = http

    async def pay(self, order: Order) -> PaymentOutcome:
        body = {
            "user_id": order.user_id,
            "username": order.username,
            "kind": "payment",
            "amount": order.total,
            "order_id": order.order_id,
        }
        try:
            answer = await self.http.request(
                "billing",
                "POST",
                "/billing/account/operate",
                json=body,
                headers={"Idempotency-Key": payment_key(order.order_id)},
                idempotent=True,
            )
        except ServiceUnavailable:
            return PaymentOutcome(paid=None)
        if answer.status == 201:
            return PaymentOutcome(paid=True, operation_id=answer.body["operation_id"])
        if answer.status == 406:
            return PaymentOutcome(paid=False)
        return PaymentOutcome(paid=None)


def payment_key(order_id: str) -> str:
    return f"order-{order_id}-payment"


class Refunds(Protocol):
    async def refund(self, order: Order) -> bool:
        """True once billing has given back whatever was paid for the order (maybe nothing)."""
        ...


class HttpRefunds:
    """Billing's order refund: naturally idempotent (it refunds what was paid and not yet refunded)."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def refund(self, order: Order) -> bool:
        try:
            answer = await self.http.request(
                "billing",
                "POST",
                f"/internal/v1/orders/{order.order_id}/refund",
                json={"user_id": order.user_id},
                idempotent=True,
            )
        except ServiceUnavailable:
            return False
        return answer.ok


class BasketUnavailable(Exception):
    pass


class HttpBasket:
    """The customer's basket, read from basket when an order is placed without items."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def lines(self, user_id: str) -> list[tuple[str, int]]:
        try:
            answer = await self.http.request("basket", "GET", f"/internal/v1/baskets/{user_id}")
        except ServiceUnavailable as exc:
            raise BasketUnavailable(str(exc)) from exc
        if not answer.ok:
            raise BasketUnavailable(f"basket answered {answer.status}")
        return [(item["menu_item_id"], int(item["quantity"])) for item in answer.body["items"]]


class OrderAnnouncements:
    """The events an order's change makes, for the outbox. app.py says where they go: every style
    puts each change on `order.events` (kind: the status, so brokers route by it); with
    `notifications_topic` notifications hear of it on their own topic too, and with
    `pending_to_billing` a new order asks billing to pay by OrderPending (ADR 002)."""

    def __init__(
        self, envelope: EnvelopeMaker, *, notifications_topic: bool = False, pending_to_billing: bool = False
    ):
        self.envelope = envelope
        self.notifications_topic = notifications_topic
        self.pending_to_billing = pending_to_billing

    def of(self, order: Order, previous: OrderStatus | None) -> list[Event]:
        event = OrderEvent(
            status=order.status.value,
            previous_status=previous.value if previous else None,
            at=rfc3339(order.updated_at),
            order=order_view(order, with_user=True),  # type: ignore[arg-type]
        )
        payload = event.model_dump()
        status = order.status.value
        events = [
            Event(
                TOPIC_ORDER_EVENTS, self.envelope(ORDER_EVENT, order.order_id, payload, order.version), status
            )
        ]
        if self.notifications_topic:
            update = self.envelope(ORDER_UPDATE_MESSAGE, order.order_id, payload, order.version)
            events.append(Event(TOPIC_NOTIFICATIONS_ORDERS, update, status))
        if self.pending_to_billing and order.status is OrderStatus.CREATED:
            pending = OrderPending(
                order_id=order.order_id, user_id=order.user_id, username=order.username, total=order.total
            )
            events.append(
                Event(
                    TOPIC_ORDERS_PENDING,
                    self.envelope(ORDER_PENDING, order.order_id, pending.model_dump(), 1),
                )
            )
        return events
