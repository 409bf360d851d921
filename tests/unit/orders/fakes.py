"""Orders' unit of work and ports in memory: the use cases run against these in the unit tests."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandwich.platform.events import Envelope
from sandwich.platform.idempotency import IdempotencyKeyReused, StoredAnswer
from sandwich.services.orders.context import OrdersPorts
from sandwich.services.orders.domain import Order, OrderStatus
from sandwich.services.orders.ports import (
    BasketUnavailable,
    OrderAnnouncements,
    PaymentOutcome,
    PricesUnavailable,
)
from sandwich.services.orders.storage import order_view
from sandwich.services.orders.unit_of_work import FirstAnswer, KeyClaim
from tests.unit.fakes import FakeUnitOfWork


class FakeOrders:
    def __init__(self, uow: FakeOrdersUnitOfWork):
        self._uow = uow
        self.rows: dict[str, Order] = {}
        self.history_of: dict[str, list[str]] = {}
        self._races_lost: set[str] = set()  # the next save of these finds the version moved on

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        return self.rows.get(order_id)

    async def add(
        self, order: Order, claim: KeyClaim | None = None, answer: FirstAnswer | None = None
    ) -> bool:
        events = self._uow.events.take()
        if claim is not None and not self._uow.keys.claim(claim, order, answer):
            return False
        self.rows[order.order_id] = order
        self.history_of[order.order_id] = [order.status.value]
        self._uow.events.written(events)
        return True

    async def save(self, order: Order, answer: FirstAnswer | None = None) -> bool:
        events = self._uow.events.take()
        stored = self.rows[order.order_id]
        if order.order_id in self._races_lost:
            self._races_lost.discard(order.order_id)
            return False
        if order.version != stored.version + 1:
            return False  # decided on a version someone moved on from: the conditional write misses
        self.rows[order.order_id] = order
        self.history_of[order.order_id].append(order.status.value)
        if answer is not None and order.idempotency_key:
            self._uow.keys.answers[(order.user_id, order.idempotency_key)] = _stored(answer)
        self._uow.events.written(events)
        return True

    def lose_next_race(self, order_id: str) -> None:
        """The next save of `order_id` misses, as if another request moved it first."""
        self._races_lost.add(order_id)

    async def history(self, order_id: str) -> list[dict[str, Any]]:
        return [{"status": status} for status in self.history_of.get(order_id, [])]

    async def awaiting_payment(self, older_than: datetime, limit: int) -> list[str]:
        return [o.order_id for o in self.rows.values() if o.status is OrderStatus.CREATED][:limit]

    async def awaiting_refund(self, limit: int) -> list[str]:
        return [o.order_id for o in self.rows.values() if o.refund_pending][:limit]

    async def set_refund_pending(self, order_id: str, pending: bool) -> None:
        from dataclasses import replace

        self.rows[order_id] = replace(self.rows[order_id], refund_pending=pending)

    async def count_by_status(self) -> dict[str, int]:
        return {s.value: sum(o.status is s for o in self.rows.values()) for s in OrderStatus}


def _stored(answer: FirstAnswer) -> StoredAnswer:
    return StoredAnswer(202 if answer.accepted else 201, order_view(answer.order), answer.order.order_id)


class FakeRequestKeys:
    def __init__(self) -> None:
        self.hashes: dict[tuple[str, str], str] = {}
        self.answers: dict[tuple[str, str], StoredAnswer] = {}

    def claim(self, claim: KeyClaim, order: Order, answer: FirstAnswer | None) -> bool:
        if (claim.scope, claim.key) in self.hashes:
            return False
        self.hashes[(claim.scope, claim.key)] = claim.request_hash
        self.answers[(claim.scope, claim.key)] = (
            _stored(answer) if answer else StoredAnswer(None, None, order.order_id)
        )
        return True

    async def existing(self, scope: str, key: str, request_hash: str) -> StoredAnswer:
        if self.hashes[(scope, key)] != request_hash:
            raise IdempotencyKeyReused(key)
        return self.answers[(scope, key)]

    async def answer(self, scope: str, key: str) -> StoredAnswer | None:
        return self.answers.get((scope, key))


class FakeOrdersUnitOfWork(FakeUnitOfWork):
    repositories = ("orders", "keys")

    def __init__(self) -> None:
        super().__init__()
        self.keys = FakeRequestKeys()
        self.orders = FakeOrders(self)


class FakePrices:
    def __init__(self, prices: dict[str, tuple[str, int]]):
        self.prices = prices
        self.away = False

    async def lookup(self, menu_item_ids: list[str]) -> dict[str, tuple[str, int]]:
        if self.away:
            raise PricesUnavailable("menu is away")
        return {i: self.prices[i] for i in menu_item_ids if i in self.prices}


class FakeBasket:
    def __init__(self) -> None:
        self.baskets: dict[str, list[tuple[str, int]]] = {}
        self.away = False

    async def lines(self, user_id: str) -> list[tuple[str, int]]:
        if self.away:
            raise BasketUnavailable("basket is away")
        return self.baskets.get(user_id, [])


class FakePayments:
    """Billing over HTTP, in memory: a balance per user; None as the verdict while it is away."""

    settles_later = False

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.away = False
        self.charged: list[str] = []

    async def pay(self, order: Order) -> PaymentOutcome:
        if self.away:
            return PaymentOutcome(paid=None)
        if self.balances.get(order.user_id, 0) < order.total:
            return PaymentOutcome(paid=False)
        self.balances[order.user_id] -= order.total
        self.charged.append(order.order_id)
        return PaymentOutcome(paid=True, operation_id=f"op-{order.order_id}")


class FakeRefunds:
    def __init__(self) -> None:
        self.refunded: list[str] = []
        self.away = False

    async def refund(self, order: Order) -> bool:
        if self.away:
            return False
        self.refunded.append(order.order_id)
        return True


@dataclass
class Spawned:
    work: list[tuple[str, Coroutine[Any, Any, None]]] = field(default_factory=list)

    def __call__(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self.work.append((name, work))

    def __del__(self) -> None:
        for _, work in self.work:
            work.close()  # never run by the test: closed, not left to warn

    async def run_all(self) -> list[str]:
        names = []
        while self.work:
            name, work = self.work.pop(0)
            await work
            names.append(name)
        return names


def envelope(event_type: str, key: str, payload: dict[str, object], version: int = 1) -> Envelope:
    return Envelope(
        type=event_type,
        producer="orders",
        key=key,
        version=version,
        payload=payload,
        event_id=str(uuid.uuid4()),
    )


@dataclass
class World:
    uow: FakeOrdersUnitOfWork
    prices: FakePrices
    basket: FakeBasket
    payments: FakePayments
    refunds: FakeRefunds
    spawned: Spawned
    ports: OrdersPorts


def world(*, by_events: bool = False) -> World:
    from sandwich.services.orders.ports import PaymentsByEvents

    prices = FakePrices({"club": ("Club", 450), "blt": ("BLT", 300)})
    basket, payments, refunds, spawned = FakeBasket(), FakePayments(), FakeRefunds(), Spawned()
    ports = OrdersPorts(
        prices=prices,
        payments=PaymentsByEvents() if by_events else payments,
        refunds=refunds,
        basket=basket,
        announcements=OrderAnnouncements(
            envelope, notifications_topic=by_events, pending_to_billing=by_events
        ),
        spawn=spawned,
        payment_retry_after_seconds=0.0,
    )
    return World(FakeOrdersUnitOfWork(), prices, basket, payments, refunds, spawned, ports)
