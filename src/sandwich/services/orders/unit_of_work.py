"""What a use case of orders reads and changes in one go: its orders, the requests' keys, and the
events the change makes (platform/unit_of_work.py).

The repositories speak orders' domain: an `Order` in, an `Order` out. The Postgres ones keep each
change and its events in one statement (storage.py); the tests' fakes keep them in dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sandwich.platform.idempotency import StoredAnswer
from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import SqlUnitOfWork, UnitOfWork
from sandwich.services.orders.domain import Order


@dataclass(frozen=True)
class KeyClaim:
    """The Idempotency-Key of the request that places an order (scope: the user)."""

    scope: str
    key: str
    request_hash: str


@dataclass(frozen=True)
class FirstAnswer:
    """What the request that placed an order first answered, kept with its key for repeats: the
    order as it stood then, and whether it was only accepted (its payment to come by events)."""

    order: Order
    accepted: bool


class OrdersRepository(Protocol):
    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None: ...

    async def add(
        self, order: Order, claim: KeyClaim | None = None, answer: FirstAnswer | None = None
    ) -> bool:
        """Store a new order with the events recorded so far; False (nothing written) when `claim`'s
        key was taken."""
        ...

    async def save(self, order: Order, answer: FirstAnswer | None = None) -> bool:
        """Store `order` (one version after the stored one) with the events recorded so far, and
        `answer` as its request's first answer; False (nothing written) when someone moved it first."""
        ...

    async def history(self, order_id: str) -> list[dict[str, Any]]: ...

    async def awaiting_payment(self, older_than: datetime, limit: int) -> list[str]: ...

    async def awaiting_refund(self, limit: int) -> list[str]: ...

    async def set_refund_pending(self, order_id: str, pending: bool) -> None: ...

    async def count_by_status(self) -> dict[str, int]: ...


class RequestKeys(Protocol):
    """The Idempotency-Keys of placed orders and their first answers."""

    async def existing(self, scope: str, key: str, request_hash: str) -> StoredAnswer:
        """The claim of `key`; IdempotencyKeyReused when it was taken with another body."""
        ...

    async def answer(self, scope: str, key: str) -> StoredAnswer | None: ...


class OrdersUnitOfWork(UnitOfWork, Protocol):
    @property
    def orders(self) -> OrdersRepository: ...

    @property
    def keys(self) -> RequestKeys: ...


class SqlOrdersUnitOfWork(SqlUnitOfWork):
    orders: OrdersRepository
    keys: RequestKeys

    def open_repositories(self, conn: Connection) -> None:
        from sandwich.services.orders.storage import PostgresOrders, PostgresRequestKeys

        self.orders = PostgresOrders(conn, self.events)
        self.keys = PostgresRequestKeys(conn)
