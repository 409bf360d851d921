"""Event shapes, declared once for every producer and consumer, with their version.

Every event travels in an `Envelope`. `key` is the aggregate id (the order id for order events), which
the bus uses for per-key ordering; `version` is the aggregate's version, so a read model can ignore a
stale or duplicated update; `trace` carries the W3C traceparent of the request that caused it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field

SCHEMA_VERSION = 1

# Topics (ADR 002 and ADR 003 names).
TOPIC_ORDER_EVENTS = "order.events"
TOPIC_USER_EVENTS = "user.events"
TOPIC_ORDERS_CREATE = "orders.create"
TOPIC_ORDERS_PENDING = "orders.pending"
TOPIC_BILLING_PAYMENTS = "billing.payments"
TOPIC_NOTIFICATIONS_ORDERS = "notifications.orders"

# Event types.
ORDER_EVENT = "OrderEvent"
USER_CREATED = "UserCreated"
ORDER_CREATE_REQUESTED = "OrderCreateRequested"
ORDER_PENDING = "OrderPending"
PAYMENT_PROCESSED = "PaymentProcessed"
ORDER_UPDATE_MESSAGE = "OrderUpdateMessage"


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def order_status_of(envelope: Envelope) -> str | None:
    """The status an order envelope carries, read without validating it, or None when there is none.

    For consumers' relevance tests (`Service.consume(wants=...)`): a None must be let through, so
    that the handler validates the payload and a malformed event still ends on the dead-letter topic.
    """
    status = envelope.payload.get("status")
    return status if isinstance(status, str) else None


def carries_order_status(envelope: Envelope, statuses: Iterable[str], types: Iterable[str] = ()) -> bool:
    """A consumer's relevance test: an order event (of `types`, default OrderEvent) whose status is
    one of `statuses`, or one too malformed to tell (its handler then rejects it)."""
    if envelope.type not in (tuple(types) or (ORDER_EVENT,)):
        return False
    status = order_status_of(envelope)
    return status is None or status in statuses


class Envelope(BaseModel):
    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    occurred_at: str = Field(default_factory=lambda: rfc3339(utcnow()))
    producer: str
    key: str
    version: int = 1
    schema_version: int = SCHEMA_VERSION
    trace: dict[str, str] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump())

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        return cls.model_validate(orjson.loads(data))


class UserCreated(BaseModel):
    """Published by users when a profile is created (ADR 003); billing opens the account from it."""

    user_id: str
    username: str
    email: str


class OrderItemPayload(BaseModel):
    menu_item_id: str
    name: str
    quantity: int
    price: int


class DeliveryPayload(BaseModel):
    address: str
    lat: float
    lon: float


class OrderSnapshot(BaseModel):
    """The whole order as the write side sees it after a transition: read models need nothing else."""

    order_id: str
    user_id: str
    username: str
    status: str
    items: list[OrderItemPayload]
    total: int
    delivery: DeliveryPayload
    food_point_id: str | None = None
    courier: str | None = None
    payment_operation_id: str | None = None
    # Why the order ended as it did: a rejection's or a cancellation's reason.
    reason: str | None = None
    created_at: str
    updated_at: str
    # True when the customer ordered the basket: basket empties itself of these lines once paid.
    from_basket: bool = False


class OrderEvent(BaseModel):
    """One state change of an order (ADR 003 `OrderEvent` on `order.events`)."""

    status: str
    previous_status: str | None = None
    at: str
    order: OrderSnapshot


class RequestedLine(BaseModel):
    menu_item_id: str
    quantity: int


class OrderCreateRequested(BaseModel):
    """ADR 002: the gateway accepted a customer's order (`orders.create`); orders prices and stores it.

    `order_id` is the gateway's: derived from the user, the Idempotency-Key and the body's hash, so a
    repeated POST names the same order and orders creates it once. `items` None orders the basket.
    """

    order_id: str
    user_id: str
    username: str
    items: list[RequestedLine] | None = None
    delivery: DeliveryPayload
    idempotency_key: str | None = None
    request_hash: str
    requested_at: str


class OrderPending(BaseModel):
    """ADR 002: an order waits for its payment (`orders.pending`); billing charges it."""

    order_id: str
    user_id: str
    username: str
    total: int


class PaymentProcessed(BaseModel):
    """ADR 002: billing's verdict on an order's payment (`billing.payments`)."""

    order_id: str
    user_id: str
    paid: bool
    operation_id: str | None = None
