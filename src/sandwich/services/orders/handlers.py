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
from sandwich.platform.idempotency import load_answer
from sandwich.platform.inbox import Prepared
from sandwich.platform.sql import Connection
from sandwich.services.orders import storage
from sandwich.services.orders.commands import (
    EmptyBasket,
    OrderNotFound,
    OrdersContext,
    apply_change_in,
    change_events,
    priced_lines,
    settle,
)
from sandwich.services.orders.domain import (
    Delivery,
    IllegalTransition,
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
        if await storage.load_order(conn, request.order_id) is not None:
            return  # the same request published twice (a client's repeated POST): taken already
        claim = None
        if request.idempotency_key is not None and order.status is OrderStatus.CREATED:
            claim = storage.KeyClaim(request.user_id, request.idempotency_key, request.request_hash)
        answer = storage.RequestAnswer(202, storage.order_view(order))
        service = self.ctx.service
        placed = await storage.insert_order(conn, order, change_events(service, order, None), claim, answer)
        if placed is not None:
            return
        # The key is taken. With this body it names this very order (derived from key and body), so
        # only another body can have taken it: the contract's idempotency_key_reused, as a verdict.
        assert request.idempotency_key is not None
        stored = await load_answer(conn, request.user_id, request.idempotency_key)
        if stored is not None and stored.resource_id == request.order_id:
            return
        refused = rejected(order, RejectionReason.IDEMPOTENCY_KEY_REUSED)
        await storage.insert_order(conn, refused, change_events(service, refused, None))

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
            lines, total = await priced_lines(self.ctx, request.user_id, requested)
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
        try:
            await apply_change_in(
                conn, self.ctx.service, verdict.order_id, settle(verdict.paid, verdict.operation_id)
            )
        except IllegalTransition as refused:
            if refused.current is OrderStatus.CANCELLED and verdict.paid:
                await storage.set_refund_pending(conn, verdict.order_id, True)
        except OrderNotFound:
            log.error("payment_for_unknown_order", order_id=verdict.order_id)


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))
