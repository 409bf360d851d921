"""Event consumer of basket: an order placed from the basket takes its lines out once it is paid.

The platform's inbox makes this run once per event id. An order's `paid` may still arrive twice under
different ids (re-published, or pushed over HTTP and consumed too), so the order id is claimed in
processed_orders in the same transaction: the second `paid` of an order changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Literal

import structlog

from sandwich.platform.events import ORDER_EVENT, Envelope, OrderEvent, carries_order_status
from sandwich.platform.sql import Connection
from sandwich.services.basket import storage
from sandwich.services.basket.domain import canonical_id, changes, empties_basket, subtract_order

log = structlog.get_logger("basket")

CONSUMER = "basket"

Outcome = Literal["applied", "ignored", "already_applied"]


def ordered_lines(event: OrderEvent) -> list[tuple[str, int]]:
    """(canonical menu item id, quantity) of the order's lines; ids that are not UUIDs match nothing."""
    lines = []
    for item in event.order.items:
        menu_item_id = canonical_id(item.menu_item_id)
        if menu_item_id is not None:
            lines.append((menu_item_id, item.quantity))
    return lines


async def apply_order_event(conn: Connection, envelope: Envelope) -> Outcome:
    """Apply one event in the caller's transaction; a malformed OrderEvent raises (it goes to the DLQ)."""
    if envelope.type != ORDER_EVENT:
        return "ignored"
    event = OrderEvent.model_validate(envelope.payload)
    if not empties_basket(event.status, event.order.from_basket):
        return "ignored"
    order_id = uuid.UUID(event.order.order_id)
    user_id = uuid.UUID(event.order.user_id)
    if not await storage.claim_order(conn, order_id, user_id):
        return "already_applied"
    await storage.lock_basket(conn, user_id)
    before = dict(await storage.lines_of(conn, user_id))
    after = subtract_order(before, ordered_lines(event))
    await storage.write_changes(conn, user_id, changes(before, after))
    log.info("basket_emptied_by_order", order_id=str(order_id), user_id=str(user_id))
    return "applied"


def concerns_basket(envelope: Envelope) -> bool:
    """The relevance test run before the inbox: only a paid order placed from the basket matters."""
    order = envelope.payload.get("order")
    if isinstance(order, dict) and order.get("from_basket") is False:
        return False
    return carries_order_status(envelope, ("paid",))


async def handle_order_event(conn: Connection, envelope: Envelope) -> None:
    """The consumer registered with the platform (its handler type returns nothing)."""
    await apply_order_event(conn, envelope)
