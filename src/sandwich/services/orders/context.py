"""What orders' use cases and routes are given, made once in app.py: the unit of work to open, the
adapters filling its ports, and the few settings they act on. Never the platform itself."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from sandwich.platform.app import typed_context
from sandwich.platform.sql import Connection
from sandwich.services.orders.ports import Basket, OrderAnnouncements, Payments, Prices, Refunds
from sandwich.services.orders.unit_of_work import OrdersUnitOfWork

Spawn = Callable[[Coroutine[Any, Any, None], str], None]
"""Run work in the background for the life of the process (`Service.spawn`)."""


class UnitsOfWork(Protocol):
    def __call__(self) -> OrdersUnitOfWork: ...


@dataclass(frozen=True)
class OrdersPorts:
    prices: Prices
    payments: Payments
    refunds: Refunds
    basket: Basket
    announcements: OrderAnnouncements
    spawn: Spawn
    payment_retry_after_seconds: float


@dataclass(frozen=True)
class OrdersContext:
    unit_of_work: UnitsOfWork
    unit_of_work_in: Callable[[Connection], OrdersUnitOfWork]
    """A unit inside a transaction the caller owns (a consumer's inbox claim)."""
    ports: OrdersPorts


context_of = typed_context(OrdersContext)
