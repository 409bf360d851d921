"""What orders does: place an order, settle its payment, move it through its states.

Each state change is one transaction with its history row and its outbox event, so the events
that leave this service are exactly the committed changes, in order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from sandwich.platform.app import Service
from sandwich.platform.bus.base import BusUnavailable
from sandwich.platform.events import (
    ORDER_EVENT,
    ORDER_PENDING,
    ORDER_UPDATE_MESSAGE,
    TOPIC_NOTIFICATIONS_ORDERS,
    TOPIC_ORDER_EVENTS,
    TOPIC_ORDERS_PENDING,
    OrderEvent,
    OrderPending,
    rfc3339,
    utcnow,
)
from sandwich.platform.idempotency import existing_claim, load_answer
from sandwich.platform.outbox import Event
from sandwich.platform.settings import Flow
from sandwich.platform.sql import Connection
from sandwich.services.orders import storage
from sandwich.services.orders.domain import (
    Delivery,
    IllegalTransition,
    Order,
    OrderLine,
    OrderStatus,
    cancelled,
    price_lines,
)
from sandwich.services.orders.ports import HttpBasket, MenuPrices, Payments, Refunds

log = structlog.get_logger("orders")


@dataclass
class OrdersContext:
    service: Service
    prices: MenuPrices
    payments: Payments
    refunds: Refunds
    basket: HttpBasket


class EmptyBasket(Exception):
    pass


@dataclass(frozen=True)
class PlaceOrder:
    user_id: str
    username: str
    lines: list[tuple[str, int]] | None  # None: order the basket
    delivery: Delivery
    idempotency_key: str | None
    request_hash: str


def change_events(service: Service, order: Order, previous: OrderStatus | None) -> list[Event]:
    """The events that announce a change, for the outbox, in the change's own statement."""
    event = OrderEvent(
        status=order.status.value,
        previous_status=previous.value if previous else None,
        at=rfc3339(order.updated_at),
        order=storage.order_view(order, with_user=True),  # type: ignore[arg-type]
    )
    payload = event.model_dump()
    status = order.status.value  # the kind brokers route by: each consumer gets the statuses it wants
    envelope = service.envelope(ORDER_EVENT, order.order_id, payload, version=order.version)
    events = [Event(TOPIC_ORDER_EVENTS, envelope, status)]
    if service.settings.flow is Flow.ASYNC:
        # ADR 002: notifications hear of orders on their own topic.
        update = service.envelope(ORDER_UPDATE_MESSAGE, order.order_id, payload, version=order.version)
        events.append(Event(TOPIC_NOTIFICATIONS_ORDERS, update, status))
        if order.status is OrderStatus.CREATED:
            pending = OrderPending(
                order_id=order.order_id, user_id=order.user_id, username=order.username, total=order.total
            )
            pending_envelope = service.envelope(ORDER_PENDING, order.order_id, pending.model_dump())
            events.append(Event(TOPIC_ORDERS_PENDING, pending_envelope))
    return events


async def priced_lines(
    ctx: OrdersContext, user_id: str, requested: list[tuple[str, int]] | None
) -> tuple[list[OrderLine], int]:
    """The lines to order, priced from the menu, and the total: the requested ones, or the basket's
    when none were sent. EmptyBasket, UnknownMenuItem; Basket/PricesUnavailable when they can't be read."""
    lines = requested if requested is not None else await ctx.basket.lines(user_id)
    if not lines:
        raise EmptyBasket()
    prices = await ctx.prices.lookup([menu_item_id for menu_item_id, _ in lines])
    return price_lines(lines, prices)


async def place_order(ctx: OrdersContext, command: PlaceOrder) -> tuple[int, dict[str, Any]]:
    """Create the order (priced from the menu) and pay for it; (status, body). Idempotent by key."""
    lines, total = await priced_lines(ctx, command.user_id, command.lines)
    now = utcnow()
    order = Order(
        order_id=str(uuid.uuid4()),
        user_id=command.user_id,
        username=command.username,
        status=OrderStatus.CREATED,
        items=tuple(lines),
        total=total,
        delivery=command.delivery,
        created_at=now,
        updated_at=now,
        idempotency_key=command.idempotency_key,
        from_basket=command.lines is None,
    )
    service = ctx.service
    is_async = service.settings.flow is Flow.ASYNC
    claim = None
    if command.idempotency_key is not None:
        claim = storage.KeyClaim(command.user_id, command.idempotency_key, command.request_hash)
    # ADR 002: the async answer is "accepted", stored with the claim; billing's verdict comes later.
    accepted = storage.RequestAnswer(202, storage.order_view(order)) if is_async else None
    async with service.database.connect() as conn:
        placed = await storage.insert_order(conn, order, change_events(service, order, None), claim, accepted)
        if placed is None:
            assert command.idempotency_key is not None
            stored = await existing_claim(
                conn, command.user_id, command.idempotency_key, command.request_hash
            )
    if placed is None:
        # A repeated request: answered outside the statement, which must not wait holding a connection.
        return await _replay(ctx, command, stored.status_code, stored.body, stored.resource_id)
    await service.announce_committed(order.order_id, placed)
    if is_async:
        return 202, storage.order_view(order)
    order = await settle_payment(ctx, order)
    return 201, storage.order_view(order)


async def _replay(
    ctx: OrdersContext, command: PlaceOrder, status: int | None, body: Any, order_id: str | None
) -> tuple[int, dict[str, Any]]:
    """Answer a repeated request: the first answer once it is there, else the order as it stands."""
    assert command.idempotency_key is not None
    for _ in range(100):
        if status:
            return status, body
        await asyncio.sleep(0.05)
        async with ctx.service.database.connect() as conn:
            answer = await load_answer(conn, command.user_id, command.idempotency_key)
        if answer is not None:
            status, body, order_id = answer.status_code, answer.body, answer.resource_id
    async with ctx.service.database.connect() as conn:
        order = await storage.load_order(conn, order_id or "")
    if order is None:
        return 409, {
            "error": {"code": "request_in_progress", "message": "The first request is still running."}
        }
    return 201, storage.order_view(order)


async def settle_payment(ctx: OrdersContext, order: Order) -> Order:
    """Ask billing to charge a created order and record the outcome; leaves it created if billing is away.

    A payment that lands after the customer cancelled is refunded: the order is marked for a refund.
    """
    outcome = await ctx.payments.pay(order)
    if outcome.paid is None:
        log.warning("payment_pending", order_id=order.order_id)
        return order

    try:
        return await apply_change(
            ctx, order.order_id, settle(outcome.paid, outcome.operation_id), known=order
        )
    except IllegalTransition as refused:
        if refused.current is OrderStatus.CANCELLED and outcome.paid:
            await mark_refund_pending(ctx, order.order_id)
        return await load(ctx, order.order_id) or order
    except OrderNotFound:
        return order


class OrderNotFound(Exception):
    pass


async def load(ctx: OrdersContext, order_id: str) -> Order | None:
    async with ctx.service.database.connect() as conn:
        return await storage.load_order(conn, order_id)


async def apply_change(
    ctx: OrdersContext, order_id: str, change: Callable[[Order], Order], *, known: Order | None = None
) -> Order:
    """Apply one state change with its history row and outbox event, in one statement.

    `change` gets the current order (`known`, when the caller holds the latest version, else read
    afresh) and returns the next one or raises IllegalTransition; if it returns the order unchanged
    (a repeated request), nothing is written. The write is conditional on the version it was decided
    on: when someone moved the order first, the change is decided again on the locked row.
    """
    service = ctx.service
    async with service.database.connect() as conn:
        current = known or await storage.load_order(conn, order_id)
        if current is None:
            raise OrderNotFound(order_id)
        changed = change(current)
        if changed is current:
            return current
        saved = await storage.save_transition(
            conn, changed, change_events(service, changed, current.status), settled_answer(service, changed)
        )
    if saved is None:
        async with service.database.begin() as conn:
            current, changed = await apply_change_in(conn, service, order_id, change)
        if changed is current:
            return current
    await service.announce_committed(order_id, saved or ())
    if changed.refund_pending:
        service.spawn(refund(ctx, changed), f"refund-{order_id}")
    return changed


async def apply_change_in(
    conn: Connection, service: Service, order_id: str, change: Callable[[Order], Order]
) -> tuple[Order, Order]:
    """apply_change on the locked row inside the caller's transaction: (the order before, after)."""
    current = await storage.load_order(conn, order_id, for_update=True)
    if current is None:
        raise OrderNotFound(order_id)
    changed = change(current)
    if changed is current:
        return current, current
    events = change_events(service, changed, current.status)
    saved = await storage.save_transition(conn, changed, events, settled_answer(service, changed))
    assert saved is not None, "the row lock keeps the version"
    return current, changed


def settled_answer(service: Service, order: Order) -> storage.RequestAnswer | None:
    """The first answer of a POST /order in the HTTP flows, once the payment outcome is in (async: 202
    `created`, stored when the order was accepted)."""
    settled = order.status in (OrderStatus.PAID, OrderStatus.PAYMENT_FAILED)
    if order.idempotency_key and settled and service.settings.flow is not Flow.ASYNC:
        return storage.RequestAnswer(201, storage.order_view(order))
    return None


def settle(paid: bool, operation_id: str | None) -> Callable[[Order], Order]:
    """The change a payment verdict makes to a created order."""

    def change(current: Order) -> Order:
        if paid:
            return current.transition(OrderStatus.PAID, utcnow(), payment_operation_id=operation_id)
        return current.transition(OrderStatus.PAYMENT_FAILED, utcnow())

    return change


def cancelling(reason: str) -> Callable[[Order], Order]:
    """The change that cancels an order (from created, paid or assigned; a repeat changes nothing);
    apply_change then refunds what was paid. IllegalTransition once cooking is done."""

    def cancel(current: Order) -> Order:
        if current.status is OrderStatus.CANCELLED:
            return current
        return cancelled(current, utcnow(), reason)

    return cancel


async def mark_refund_pending(ctx: OrdersContext, order_id: str) -> None:
    async with ctx.service.database.begin() as conn:
        await storage.set_refund_pending(conn, order_id, True)


async def refund(ctx: OrdersContext, order: Order) -> None:
    """Ask billing to give back whatever was paid for the order; the job retries until billing answers."""
    if await ctx.refunds.refund(order):
        async with ctx.service.database.begin() as conn:
            await storage.set_refund_pending(conn, order.order_id, False)


async def retry_pending_refunds(ctx: OrdersContext) -> None:
    async with ctx.service.database.connect() as conn:
        order_ids = await storage.orders_awaiting_refund(conn, 100)
    for order_id in order_ids:
        order = await load(ctx, order_id)
        if order is not None:
            await refund(ctx, order)


async def retry_pending_payments(ctx: OrdersContext) -> None:
    """Background job: settle orders left `created` because billing was unreachable or we crashed."""
    older_than = utcnow() - timedelta(seconds=ctx.service.settings.payment_retry_after_seconds)
    async with ctx.service.database.connect() as conn:
        order_ids = await storage.orders_awaiting_payment(conn, older_than, 100)
    for order_id in order_ids:
        async with ctx.service.database.connect() as conn:
            order = await storage.load_order(conn, order_id)
        if order is not None and order.status is OrderStatus.CREATED:
            try:
                await settle_payment(ctx, order)
            except BusUnavailable as exc:  # sync flow: committed; the relay passes it on later
                log.warning("order_change_not_passed_on", order_id=order_id, error=str(exc))
