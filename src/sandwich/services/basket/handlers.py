"""Event consumer of basket: an order placed from the basket takes its lines out once it is paid.

The platform's inbox makes this run once per event id, in one transaction with the claim, which the
unit of work joins. An order's `paid` may still arrive twice under different ids (re-published, or
pushed over HTTP and consumed too): the use case claims the order id, so the second changes nothing.
"""

from __future__ import annotations

import uuid

import structlog

from sandwich.platform.events import ORDER_EVENT, Envelope, OrderEvent, carries_order_status
from sandwich.platform.sql import Connection
from sandwich.services.basket import commands
from sandwich.services.basket.commands import Outcome, PaidOrder
from sandwich.services.basket.domain import canonical_id, empties_basket
from sandwich.services.basket.unit_of_work import SqlBasketUnitOfWork

log = structlog.get_logger("basket")

CONSUMER = "basket"


def ordered_lines(event: OrderEvent) -> list[tuple[str, int]]:
    """(canonical menu item id, quantity) of the order's lines; ids that are not UUIDs match nothing."""
    lines = []
    for item in event.order.items:
        menu_item_id = canonical_id(item.menu_item_id)
        if menu_item_id is not None:
            lines.append((menu_item_id, item.quantity))
    return lines


def paid_order(envelope: Envelope) -> PaidOrder | None:
    """The paid order placed from the basket this event is about, or None when it is no such event;
    a malformed OrderEvent raises (it goes to the DLQ)."""
    if envelope.type != ORDER_EVENT:
        return None
    event = OrderEvent.model_validate(envelope.payload)
    if not empties_basket(event.status, event.order.from_basket):
        return None
    return PaidOrder(uuid.UUID(event.order.order_id), uuid.UUID(event.order.user_id), ordered_lines(event))


def concerns_basket(envelope: Envelope) -> bool:
    """The relevance test run before the inbox: only a paid order placed from the basket matters."""
    order = envelope.payload.get("order")
    if isinstance(order, dict) and order.get("from_basket") is False:
        return False
    return carries_order_status(envelope, ("paid",))


class PaidOrdersConsumer:
    """The consumer registered with the platform for order events."""

    async def apply(self, conn: Connection, envelope: Envelope) -> Outcome:
        """Apply one event in the caller's transaction on `conn`."""
        order = paid_order(envelope)
        if order is None:
            return "ignored"
        outcome = await commands.take_out_paid_order(order, SqlBasketUnitOfWork.joining(conn))
        if outcome == "applied":
            log.info("basket_emptied_by_order", order_id=str(order.order_id), user_id=str(order.user_id))
        return outcome

    async def on_order_event(self, conn: Connection, envelope: Envelope) -> None:
        """The handler the platform calls (its handler type returns nothing)."""
        await self.apply(conn, envelope)
