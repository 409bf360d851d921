"""What orders does: place an order, settle its payment, move it through its states.

Each use case takes its command (or an order's id and the change to make), a unit of work and the
ports; it returns orders, and says what went wrong with domain errors that api.py turns into status
codes. Each state change is one statement with its history row and its outbox events (the unit of
work's repository writes them together), so the events that leave this service are exactly the
committed changes, in order. Which interaction style runs is not asked here: app.py picks the
ports (payments now over HTTP, or later by events) and where the events go.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog

from sandwich.platform.bus.base import BusUnavailable
from sandwich.platform.events import utcnow
from sandwich.platform.idempotency import StoredAnswer
from sandwich.services.orders.context import OrdersPorts
from sandwich.services.orders.domain import (
    Delivery,
    IllegalTransition,
    Order,
    OrderLine,
    OrderStatus,
    RejectionReason,
    cancelled,
    price_lines,
    rejected,
)
from sandwich.services.orders.unit_of_work import FirstAnswer, KeyClaim, OrdersUnitOfWork

log = structlog.get_logger("orders")

Change = Callable[[Order], Order]
"""The next version of an order, or the order itself for a repeat; raises IllegalTransition."""
REPLAY_POLLS = 100
REPLAY_POLL_SECONDS = 0.05


class EmptyBasket(Exception):
    pass


class OrderNotFound(Exception):
    pass


class RequestInProgress(Exception):
    """A repeated request whose first is still running and has placed nothing yet."""


@dataclass(frozen=True)
class PlaceOrder:
    user_id: str
    username: str
    lines: list[tuple[str, int]] | None  # None: order the basket
    delivery: Delivery
    idempotency_key: str | None
    request_hash: str


@dataclass(frozen=True)
class Placed:
    """The order a request placed; `accepted` when its payment comes later, by events (ADR 002)."""

    order: Order
    accepted: bool


@dataclass(frozen=True)
class Repeated:
    """A repeated request: the first request's answer, as it was stored, to be given again."""

    answer: StoredAnswer


async def priced_lines(
    ports: OrdersPorts, user_id: str, requested: list[tuple[str, int]] | None
) -> tuple[list[OrderLine], int]:
    """The lines to order, priced from the menu, and the total: the requested ones, or the basket's
    when none were sent. EmptyBasket, UnknownMenuItem; Basket/PricesUnavailable when they can't be read."""
    lines = requested if requested is not None else await ports.basket.lines(user_id)
    if not lines:
        raise EmptyBasket()
    prices = await ports.prices.lookup([menu_item_id for menu_item_id, _ in lines])
    return price_lines(lines, prices)


async def place_order(command: PlaceOrder, uow: OrdersUnitOfWork, ports: OrdersPorts) -> Placed | Repeated:
    """Create the order (priced from the menu) and pay for it. Idempotent by key: a repeat gets the
    first answer, or the order as it stands once the first request has placed it; the same key with
    another body raises IdempotencyKeyReused."""
    lines, total = await priced_lines(ports, command.user_id, command.lines)
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
    claim = None
    if command.idempotency_key is not None:
        claim = KeyClaim(command.user_id, command.idempotency_key, command.request_hash)
    accepted = ports.payments.settles_later
    # ADR 002: the async answer is "accepted", stored with the claim; billing's verdict comes later.
    answer = FirstAnswer(order, accepted=True) if accepted else None
    async with uow.statements() as step:
        step.events.record(*ports.announcements.of(order, None))
        placed = await step.orders.add(order, claim, answer)
        if placed:
            await step.commit()
        else:
            assert claim is not None
            stored = await step.keys.existing(claim.scope, claim.key, claim.request_hash)
    if not placed:
        # A repeated request: answered outside the statement, which must not wait holding a connection.
        return await replay(command, stored, uow)
    if accepted:
        return Placed(order, accepted=True)
    return Placed(await settle_payment(order, uow, ports), accepted=False)


async def replay(
    command: PlaceOrder,
    stored: StoredAnswer,
    uow: OrdersUnitOfWork,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Placed | Repeated:
    """Answer a repeated request: the first answer once it is there, else the order as it stands;
    RequestInProgress when the first request has placed nothing yet."""
    assert command.idempotency_key is not None
    for _ in range(REPLAY_POLLS):
        if stored.status_code:
            return Repeated(stored)
        await sleep(REPLAY_POLL_SECONDS)
        async with uow.statements() as step:
            answer = await step.keys.answer(command.user_id, command.idempotency_key)
        if answer is not None:
            stored = answer
    order = await load(stored.resource_id or "", uow)
    if order is None:
        raise RequestInProgress()
    return Placed(order, accepted=False)


async def settle_payment(order: Order, uow: OrdersUnitOfWork, ports: OrdersPorts) -> Order:
    """Ask billing to charge a created order and record the outcome; leaves it created if billing is away.

    A payment that lands after the customer cancelled is refunded: the order is marked for a refund.
    """
    outcome = await ports.payments.pay(order)
    if outcome.paid is None:
        log.warning("payment_pending", order_id=order.order_id)
        return order
    try:
        return await apply_change(
            order.order_id, settle(outcome.paid, outcome.operation_id), uow, ports, known=order
        )
    except IllegalTransition as refused:
        if refused.current is OrderStatus.CANCELLED and outcome.paid:
            await set_refund_pending(order.order_id, True, uow)
        return await load(order.order_id, uow) or order
    except OrderNotFound:
        return order


async def load(order_id: str, uow: OrdersUnitOfWork) -> Order | None:
    async with uow.statements() as step:
        return await step.orders.get(order_id)


async def order_with_history(order_id: str, uow: OrdersUnitOfWork) -> tuple[Order, list[dict[str, object]]]:
    """The write side's copy of one order and its history (order_info's fallback); OrderNotFound."""
    async with uow.statements() as step:
        order = await step.orders.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order, await step.orders.history(order_id)


async def apply_change(
    order_id: str, change: Change, uow: OrdersUnitOfWork, ports: OrdersPorts, *, known: Order | None = None
) -> Order:
    """Apply one state change with its history row and outbox events, in one statement.

    `change` gets the current order (`known`, when the caller holds the latest version, else read
    afresh) and returns the next one or raises IllegalTransition; if it returns the order unchanged
    (a repeated request), nothing is written. The write is conditional on the version it was decided
    on: when someone moved the order first, the change is decided again on the locked row.
    """
    async with uow.statements() as step:
        current = known or await step.orders.get(order_id)
        if current is None:
            raise OrderNotFound(order_id)
        changed = change(current)
        if changed is current:
            return current
        saved = await _save(changed, current, step, ports)
        if saved:
            await step.commit()
    if not saved:
        async with uow as step:
            current, changed = await apply_change_in(order_id, change, step, ports)
            await step.commit()
        if changed is current:
            return current
    if changed.refund_pending:
        ports.spawn(refund(changed, uow.statements(), ports), f"refund-{order_id}")
    return changed


async def apply_change_in(
    order_id: str, change: Change, uow: OrdersUnitOfWork, ports: OrdersPorts
) -> tuple[Order, Order]:
    """apply_change on the locked row, in the unit's open transaction: (the order before, after)."""
    current = await uow.orders.get(order_id, for_update=True)
    if current is None:
        raise OrderNotFound(order_id)
    changed = change(current)
    if changed is current:
        return current, current
    saved = await _save(changed, current, uow, ports)
    assert saved, "the row lock keeps the version"
    return current, changed


async def _save(changed: Order, current: Order, uow: OrdersUnitOfWork, ports: OrdersPorts) -> bool:
    uow.events.record(*ports.announcements.of(changed, current.status))
    return await uow.orders.save(changed, settled_answer(changed, ports))


def settled_answer(order: Order, ports: OrdersPorts) -> FirstAnswer | None:
    """The first answer of a POST /order paid now, once the payment's outcome is in (when payment
    comes later, the answer was stored when the order was accepted)."""
    settled = order.status in (OrderStatus.PAID, OrderStatus.PAYMENT_FAILED)
    if order.idempotency_key and settled and not ports.payments.settles_later:
        return FirstAnswer(order, accepted=False)
    return None


def settle(paid: bool, operation_id: str | None) -> Change:
    """The change a payment verdict makes to a created order."""

    def change(current: Order) -> Order:
        if paid:
            return current.transition(OrderStatus.PAID, utcnow(), payment_operation_id=operation_id)
        return current.transition(OrderStatus.PAYMENT_FAILED, utcnow())

    return change


def cancelling(reason: str) -> Change:
    """The change that cancels an order (from created, paid or assigned; a repeat changes nothing);
    apply_change then refunds what was paid. IllegalTransition once cooking is done."""

    def cancel(current: Order) -> Order:
        if current.status is OrderStatus.CANCELLED:
            return current
        return cancelled(current, utcnow(), reason)

    return cancel


async def cancel_for_customer(
    order_id: str, user_id: str, is_admin: bool, uow: OrdersUnitOfWork, ports: OrdersPorts
) -> Order:
    """A customer cancels their order (an admin, anyone's): another's is not found, as if absent."""
    order = await load(order_id, uow)
    if order is None or (order.user_id != user_id and not is_admin):
        raise OrderNotFound(order_id)
    return await apply_change(order_id, cancelling("cancelled by the customer"), uow, ports)


async def store_order_request(
    order: Order, request_hash: str, uow: OrdersUnitOfWork, ports: OrdersPorts
) -> None:
    """ADR 002: store the order a customer's accepted request made (priced, or rejected), in the
    unit's open transaction, unless it is stored already (the same request published twice).

    A key taken by another body is the contract's idempotency_key_reused, told as a rejection: with
    this body the key names this very order (its id derives from key and body)."""
    if await uow.orders.get(order.order_id) is not None:
        return
    claim = None
    if order.idempotency_key is not None and order.status is OrderStatus.CREATED:
        claim = KeyClaim(order.user_id, order.idempotency_key, request_hash)
    uow.events.record(*ports.announcements.of(order, None))
    if await uow.orders.add(order, claim, FirstAnswer(order, accepted=True)):
        await uow.commit()
        return
    assert order.idempotency_key is not None
    stored = await uow.keys.answer(order.user_id, order.idempotency_key)
    if stored is not None and stored.resource_id == order.order_id:
        return
    refused = rejected(order, RejectionReason.IDEMPOTENCY_KEY_REUSED)
    uow.events.record(*ports.announcements.of(refused, None))
    await uow.orders.add(refused)
    await uow.commit()


async def settle_verdict(
    order_id: str, paid: bool, operation_id: str | None, uow: OrdersUnitOfWork, ports: OrdersPorts
) -> None:
    """ADR 002: billing's verdict settles the order in the unit's open transaction; a verdict for an
    order cancelled meanwhile marks it for a refund, as in the HTTP flows."""
    try:
        await apply_change_in(order_id, settle(paid, operation_id), uow, ports)
    except IllegalTransition as refused:
        if refused.current is OrderStatus.CANCELLED and paid:
            await uow.orders.set_refund_pending(order_id, True)
    except OrderNotFound:
        log.error("payment_for_unknown_order", order_id=order_id)
        return
    await uow.commit()


async def set_refund_pending(order_id: str, pending: bool, uow: OrdersUnitOfWork) -> None:
    async with uow.statements() as step:
        await step.orders.set_refund_pending(order_id, pending)
        await step.commit()


async def refund(order: Order, uow: OrdersUnitOfWork, ports: OrdersPorts) -> None:
    """Ask billing to give back whatever was paid for the order; the job retries until billing answers."""
    if await ports.refunds.refund(order):
        await set_refund_pending(order.order_id, False, uow)


async def retry_pending_refunds(uow: OrdersUnitOfWork, ports: OrdersPorts) -> None:
    async with uow.statements() as step:
        order_ids = await step.orders.awaiting_refund(100)
    for order_id in order_ids:
        order = await load(order_id, uow)
        if order is not None:
            await refund(order, uow, ports)


async def retry_pending_payments(uow: OrdersUnitOfWork, ports: OrdersPorts) -> None:
    """Background job: settle orders left `created` because billing was unreachable or we crashed."""
    older_than = utcnow() - timedelta(seconds=ports.payment_retry_after_seconds)
    async with uow.statements() as step:
        order_ids = await step.orders.awaiting_payment(older_than, 100)
    for order_id in order_ids:
        order = await load(order_id, uow)
        if order is not None and order.status is OrderStatus.CREATED:
            try:
                await settle_payment(order, uow, ports)
            except BusUnavailable as exc:  # sync flow: committed; the relay passes it on later
                log.warning("order_change_not_passed_on", order_id=order_id, error=str(exc))
