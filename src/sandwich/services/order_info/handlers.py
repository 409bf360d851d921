"""Event consumer of order_info: every OrderEvent on `order.events` updates the read model.

The platform's inbox wraps the handler, so an event id is applied once; the version rule in the
domain makes the view right even when events come twice under different ids or out of order.
"""

from __future__ import annotations

from sandwich.platform.events import ORDER_EVENT, Envelope, OrderEvent
from sandwich.platform.inbox import Effect
from sandwich.platform.sql import Connection
from sandwich.platform.tracing import trace_id_of
from sandwich.services.order_info import storage
from sandwich.services.order_info.domain import OrderUpdate

CONSUMER = "order_info"


def order_update(envelope: Envelope) -> OrderUpdate:
    """The domain's view of an OrderEvent envelope; raises on a malformed one (it goes to the DLQ)."""
    event = OrderEvent.model_validate(envelope.payload)
    return OrderUpdate.from_event(envelope.version, event.model_dump(), trace_id_of(envelope.trace))


async def apply_order_event(conn: Connection, envelope: Envelope) -> None:
    """Apply one event on the caller's connection (replay, which claims the event itself)."""
    if envelope.type != ORDER_EVENT:
        return
    await storage.apply_update(conn, order_update(envelope))


async def order_event_effect(envelope: Envelope) -> Effect | None:
    """The live consumer: the event's writes and its inbox claim in one statement."""
    if envelope.type != ORDER_EVENT:
        return None
    return storage.update_effect(order_update(envelope))
