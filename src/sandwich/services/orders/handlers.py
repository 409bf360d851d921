"""What orders does with the events it consumes (async flow, ADR 002).

- `OrderCreateRequested` on `orders.create`: the gateway accepted a customer's order and answered
  202; orders prices it from the menu and stores it (then `OrderPending` goes to billing through the
  outbox), or stores it `rejected` with the reason when only orders can see it is wrong.
- `PaymentProcessed` on `billing.payments`: billing's verdict settles the order.

Both store their effect in the transaction of the inbox claim, so a redelivered event changes nothing;
an order request is priced before that transaction begins (menu and basket are asked over HTTP, and
a transaction must not stay open across their answers).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from sandwich.platform.events import (
    ORDER_CREATE_REQUESTED,
    PAYMENT_PROCESSED,
    Envelope,
    OrderCreateRequested,
    PaymentProcessed,
    utcnow,
)
from sandwich.platform.inbox import Prepared
from sandwich.platform.sql import Connection
from sandwich.services.orders.commands import EmptyBasket, priced_lines, settle_verdict, store_order_request
from sandwich.services.orders.context import OrdersContext
from sandwich.services.orders.domain import (
    Delivery,
    Order,
    OrderStatus,
    RejectionReason,
    UnknownMenuItem,
    rejected,
)
from sandwich.services.orders.ports import BasketUnavailable, PricesUnavailable

log = structlog.get_logger("orders")

GIVE_UP_AFTER = timedelta(seconds=30)
"""How long a request waits for menu or basket to answer (the bus retries it in place) before it is
rejected as `menu_unavailable` / `basket_unavailable`: the customer hears a verdict, not silence."""


class OrderRequests:
    """ADR 002 step 3: orders takes `OrderCreateRequested` and creates the order."""

    def __init__(self, ctx: OrdersContext):
        self.ctx = ctx

    async def price(self, envelope: Envelope) -> Order | None:
        """Outside the transaction (menu and basket are asked over HTTP): the order to store, priced
        or rejected; None for an event of another type."""
        if envelope.type != ORDER_CREATE_REQUESTED:
            return None
        return await self._priced_or_rejected(OrderCreateRequested.model_validate(envelope.payload))

    async def store(self, conn: Connection, envelope: Envelope, order: Order | None) -> None:
        """In the transaction of the inbox claim: the order with its events, unless it exists."""
        if order is None:
            return
        request = OrderCreateRequested.model_validate(envelope.payload)
        uow = self.ctx.unit_of_work_in(conn)
        async with uow:
            await store_order_request(order, request.request_hash, uow, self.ctx.ports)

    def consumer(self) -> Prepared:
        """The consumer of `orders.create`: priced first, stored with the claim."""
        return Prepared(self.price, self.store)

    async def _priced_or_rejected(self, request: OrderCreateRequested) -> Order:
        requested = (
            None if request.items is None else [(line.menu_item_id, line.quantity) for line in request.items]
        )
        now = utcnow()
        order = Order(
            order_id=request.order_id,
            user_id=request.user_id,
            username=request.username,
            status=OrderStatus.CREATED,
            items=(),
            total=0,
            delivery=Delivery(request.delivery.address, request.delivery.lat, request.delivery.lon),
            created_at=now,
            updated_at=now,
            idempotency_key=request.idempotency_key,
            from_basket=request.items is None,
        )
        try:
            lines, total = await priced_lines(self.ctx.ports, request.user_id, requested)
        except UnknownMenuItem:
            return rejected(order, RejectionReason.UNKNOWN_MENU_ITEM)
        except EmptyBasket:
            return rejected(order, RejectionReason.BASKET_EMPTY)
        except (PricesUnavailable, BasketUnavailable) as exc:
            if now - _parse(request.requested_at) < GIVE_UP_AFTER:
                raise  # the bus retries it in place, with backoff
            log.warning("order_request_rejected_unavailable", order_id=request.order_id, error=str(exc))
            reason = (
                RejectionReason.MENU_UNAVAILABLE
                if isinstance(exc, PricesUnavailable)
                else RejectionReason.BASKET_UNAVAILABLE
            )
            return rejected(order, reason)
        return replace(order, items=tuple(lines), total=total)


class PaymentVerdicts:
    """ADR 002: billing's PaymentProcessed settles the order, in one transaction with the inbox claim.

    A verdict for an order that was cancelled meanwhile marks it for a refund, as in the HTTP flows.
    """

    def __init__(self, ctx: OrdersContext):
        self.ctx = ctx

    async def on_payment_processed(self, conn: Connection, envelope: Envelope) -> None:
        if envelope.type != PAYMENT_PROCESSED:
            return
        verdict = PaymentProcessed.model_validate(envelope.payload)
        uow = self.ctx.unit_of_work_in(conn)
        async with uow:
            await settle_verdict(verdict.order_id, verdict.paid, verdict.operation_id, uow, self.ctx.ports)


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))
