"""Event consumers of billing: an account is opened when a user is created (ADR 003)."""

from __future__ import annotations

from sandwich.platform.app import Service
from sandwich.platform.events import (
    ORDER_PENDING,
    PAYMENT_PROCESSED,
    TOPIC_BILLING_PAYMENTS,
    USER_CREATED,
    Envelope,
    OrderPending,
    PaymentProcessed,
    UserCreated,
)
from sandwich.platform.sql import Connection
from sandwich.services.billing import storage
from sandwich.services.billing.api import injected_delay, operate_in
from sandwich.services.billing.domain import OperationKind


async def open_account_for_new_user(conn: Connection, envelope: Envelope) -> None:
    if envelope.type != USER_CREATED:
        return
    user = UserCreated.model_validate(envelope.payload)
    await storage.open_account(conn, user.user_id, user.username)


def payment_key(order_id: str) -> str:
    """The same key orders uses for its synchronous payment call: one charge per order, whatever way."""
    return f"order-{order_id}-payment"


class PaymentsConsumer:
    """ADR 002: charge an OrderPending and announce the verdict as PaymentProcessed, in one transaction
    with the ledger row and the inbox claim (so a redelivered OrderPending charges nothing twice)."""

    def __init__(self, service: Service):
        self.service = service

    async def on_order_pending(self, conn: Connection, envelope: Envelope) -> None:
        if envelope.type != ORDER_PENDING:
            return
        pending = OrderPending.model_validate(envelope.payload)
        await injected_delay(self.service)
        status, body = await operate_in(
            conn,
            pending.user_id,
            pending.username,
            OperationKind.PAYMENT,
            pending.total,
            pending.order_id,
            payment_key(pending.order_id),
        )
        verdict = PaymentProcessed(
            order_id=pending.order_id,
            user_id=pending.user_id,
            paid=status == 201,
            operation_id=body.get("operation_id") if status == 201 else None,
        )
        event = self.service.envelope(PAYMENT_PROCESSED, pending.order_id, verdict.model_dump())
        await self.service.record_event(conn, TOPIC_BILLING_PAYMENTS, event)
