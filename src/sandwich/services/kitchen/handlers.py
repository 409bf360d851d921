"""Event consumer of kitchen: OrderEvents on `order.events` (the sync flow pushes the same envelopes to
the platform's POST /internal/v1/events/order.events, which runs this consumer behind the same inbox).

- paid: the order waits for a food point (a pending row; the assigner is woken on commit);
- assigned: orders confirmed our assignment (covers a confirmation whose HTTP answer was lost);
- cancelled: a waiting order is forgotten; a reserved one gives its slot and ingredients back;
- ready (or later, should ready have been missed): the slot is free again, the ingredients are used.
Every effect is idempotent by itself, on top of the inbox that makes each event id count once.

`paid` and `assigned`, the two events every order brings here, stay one statement each with the inbox
claim (`storage.add_pending_effect`, `storage.confirm_effect`): a use case through a unit of work would
add BEGIN and COMMIT to each. The rarer ones run `commands.apply_order_event` in the claim's
transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sandwich.platform.events import ORDER_EVENT, Envelope, OrderEvent, carries_order_status
from sandwich.platform.inbox import IN_TRANSACTION, Effect, InTransaction, OneStatement
from sandwich.platform.sql import Connection
from sandwich.services.kitchen import storage
from sandwich.services.kitchen.commands import apply_order_event
from sandwich.services.kitchen.domain import PendingOrder
from sandwich.services.kitchen.unit_of_work import SqlKitchenUnitOfWork

CONSUMER = "kitchen"


class InvalidOrderEvent(ValueError):
    pass


def parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise InvalidOrderEvent(f"not an RFC 3339 time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def order_event(envelope: Envelope) -> OrderEvent:
    """The OrderEvent in an envelope; raises (pydantic ValidationError or InvalidOrderEvent) when malformed."""
    event = OrderEvent.model_validate(envelope.payload)
    for name, value in (("order_id", event.order.order_id), ("user_id", event.order.user_id)):
        try:
            uuid.UUID(value)
        except ValueError as exc:
            raise InvalidOrderEvent(f"{name} is not a UUID: {value!r}") from exc
    parse_time(event.at)
    return event


def pending_order(event: OrderEvent) -> PendingOrder:
    order = event.order
    return PendingOrder(
        order_id=order.order_id,
        user_id=order.user_id,
        username=order.username,
        items=[item.model_dump() for item in order.items],
        delivery=order.delivery.model_dump(),
        lat=order.delivery.lat,
        lon=order.delivery.lon,
        paid_at=parse_time(event.at),
    )


STATUSES_OF_INTEREST = frozenset({"paid", "assigned", "cancelled", "ready", "in_delivery", "completed"})


def concerns_kitchen(envelope: Envelope) -> bool:
    """The relevance test run before the inbox: `created` and `payment_failed` change nothing here."""
    return carries_order_status(envelope, STATUSES_OF_INTEREST)


async def handle_order_event(conn: Connection, envelope: Envelope) -> None:
    """The consumer of the rarer events (cancelled, ready...): the platform's inbox runs it once per
    event id, in one transaction with the claim, which the unit joins."""
    if envelope.type != ORDER_EVENT:
        return
    event = order_event(envelope)
    pending = pending_order(event) if event.status == "paid" else None
    await apply_order_event(event, SqlKitchenUnitOfWork.joining(conn), pending)


async def order_event_effect(envelope: Envelope) -> Effect | InTransaction | None:
    """The consumer: `paid` and `assigned`, an order's two events here, are one statement each with
    the inbox claim; the others go to the transactional handler."""
    if envelope.type != ORDER_EVENT:
        return None
    event = order_event(envelope)
    if event.status == "paid":
        return storage.add_pending_effect(pending_order(event))
    if event.status == "assigned":
        if not event.order.food_point_id:
            return None
        return storage.confirm_effect(event.order.order_id, event.order.food_point_id)
    return IN_TRANSACTION


def order_events_consumer() -> OneStatement:
    """What kitchen consumes `order.events` with (app.py)."""
    return OneStatement(order_event_effect, in_transaction=handle_order_event)
