"""Event consumer of delivery: OrderEvents on `order.events` keep the deliveries table.

`ready` offers the order to couriers (with its pickup point when kitchen can tell it, else filled
in later); `in_delivery` and `completed` record what orders decided. The platform's inbox makes an
event id apply once; the version rule in storage makes a stale or duplicated event change nothing.
"""

from __future__ import annotations

from sandwich.platform.events import ORDER_EVENT, Envelope, OrderEvent, carries_order_status
from sandwich.platform.sql import Connection
from sandwich.services.delivery.commands import apply_order_update
from sandwich.services.delivery.domain import TRACKED_STATUSES, DeliveryUpdate
from sandwich.services.delivery.ports import PickupPoints
from sandwich.services.delivery.unit_of_work import SqlDeliveryUnitOfWork

CONSUMER = "delivery"


def delivery_update(envelope: Envelope) -> DeliveryUpdate | None:
    """Delivery's view of an OrderEvent envelope (None when its status is none of delivery's business);
    raises on a malformed one (it goes to the dead-letter topic)."""
    event = OrderEvent.model_validate(envelope.payload)
    return DeliveryUpdate.from_event(envelope.version, event.model_dump())


def concerns_delivery(envelope: Envelope) -> bool:
    """The relevance test run before the inbox: delivery keeps rows for ready orders onwards only."""
    return carries_order_status(envelope, TRACKED_STATUSES)


class OrderEventHandler:
    """The consumer: `handler(conn, envelope)` runs inside the inbox's transaction, which the inbox
    commits (so the use case's unit joins it). It asks kitchen for a ready order's pickup point
    there, briefly (ports.KITCHEN_TIMEOUT_SECONDS, cached)."""

    def __init__(self, food_points: PickupPoints):
        self.food_points = food_points

    async def __call__(self, conn: Connection, envelope: Envelope) -> None:
        if envelope.type != ORDER_EVENT:
            return
        update = delivery_update(envelope)
        if update is not None:
            uow = SqlDeliveryUnitOfWork.joining(conn)
            await apply_order_update(update, uow, self.food_points)
