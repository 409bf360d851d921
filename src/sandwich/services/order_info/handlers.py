"""Event consumer of order_info: every OrderEvent on `order.events` updates the read model.

The platform's inbox wraps the handler, so an event id is applied once; the version rule in the
domain makes the view right even when events come twice under different ids or out of order.

The live consumer stays one statement (`OneStatement(order_event_effect)`: the inbox claim, the
history entry and the view in one round trip, storage.update_effect), not a use case on a unit of
work: that would be BEGIN, claim, effect, COMMIT, four round trips per event on the busiest path.
Replay applies the same change through the use case (`apply_order_event`).
"""

from __future__ import annotations

from sandwich.platform.events import ORDER_EVENT, Envelope, OrderEvent
from sandwich.platform.inbox import Effect
from sandwich.platform.tracing import trace_id_of
from sandwich.services.order_info import storage
from sandwich.services.order_info.domain import OrderUpdate

CONSUMER = "order_info"


def order_update(envelope: Envelope) -> OrderUpdate:
    """The domain's view of an OrderEvent envelope; raises on a malformed one (it goes to the DLQ)."""
    event = OrderEvent.model_validate(envelope.payload)
    return OrderUpdate.from_event(envelope.version, event.model_dump(), trace_id_of(envelope.trace))


async def order_event_effect(envelope: Envelope) -> Effect | None:
    """The live consumer: the event's writes and its inbox claim in one statement."""
    if envelope.type != ORDER_EVENT:
        return None
    return storage.update_effect(order_update(envelope))
