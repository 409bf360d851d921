"""Event consumer of delivery: OrderEvents on `order.events` keep the deliveries table.

`ready` offers the order to couriers (with its pickup point when kitchen can tell it, else filled
in later); `in_delivery` and `completed` record what orders decided. The platform's inbox makes an
event id apply once; the version rule in storage makes a stale or duplicated event change nothing.
"""

from __future__ import annotations

from sandwich.platform.events import ORDER_EVENT, Envelope, OrderEvent, carries_order_status
from sandwich.platform.sql import Connection
from sandwich.services.delivery import storage
from sandwich.services.delivery.domain import TRACKED_STATUSES, DeliveryStatus, DeliveryUpdate
from sandwich.services.delivery.ports import FoodPoints

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
    """The consumer: `handler(conn, envelope)` runs inside the inbox's transaction."""

    def __init__(self, food_points: FoodPoints):
        self.food_points = food_points

    async def apply(self, conn: Connection, update: DeliveryUpdate) -> bool:
        """Apply one update in the caller's transaction; True when the row changed."""
        pickup = None
        if update.status is DeliveryStatus.READY and update.food_point_id:
            pickup = await self.food_points.pickup(update.food_point_id)
        return await storage.apply_update(conn, update, pickup)

    async def __call__(self, conn: Connection, envelope: Envelope) -> None:
        if envelope.type != ORDER_EVENT:
            return
        update = delivery_update(envelope)
        if update is not None:
            await self.apply(conn, update)
