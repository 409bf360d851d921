"""Event consumers of billing: an account is opened when a user is created (ADR 003), and in the
async flow an OrderPending is charged (ADR 002). Each runs inside the transaction of its inbox
claim, on the connection it is given, through a unit of work joining it."""

from __future__ import annotations

from sandwich.platform.events import ORDER_PENDING, USER_CREATED, Envelope, OrderPending, UserCreated
from sandwich.platform.sql import Connection
from sandwich.services.billing import commands
from sandwich.services.billing.context import BillingContext
from sandwich.services.billing.unit_of_work import SqlBillingUnitOfWork


async def on_user_event(conn: Connection, envelope: Envelope) -> None:
    """UserCreated: open the new user's account (one statement with the inbox claim's transaction)."""
    if envelope.type != USER_CREATED:
        return
    user = UserCreated.model_validate(envelope.payload)
    await commands.open_account(user.user_id, user.username, SqlBillingUnitOfWork.joining(conn))


class PaymentsConsumer:
    """ADR 002: charge an OrderPending and announce the verdict as PaymentProcessed, in one transaction
    with the ledger row and the inbox claim (so a redelivered OrderPending charges nothing twice)."""

    def __init__(self, context: BillingContext):
        self.context = context

    async def on_order_pending(self, conn: Connection, envelope: Envelope) -> None:
        if envelope.type != ORDER_PENDING:
            return
        pending = OrderPending.model_validate(envelope.payload)
        await self.context.injected_delay()
        uow = SqlBillingUnitOfWork.joining(conn)
        await commands.pay_for_order(pending, uow, self.context.envelopes)
