"""basket's unit of work: the baskets and the paid orders already taken out of them.

Basket announces no events; its unit is the transaction (or, for a read, one statement on its own)
and the repositories on it.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import SqlUnitOfWork, UnitOfWork
from sandwich.services.basket.domain import BasketChanges
from sandwich.services.basket.storage import PostgresBaskets, PostgresProcessedOrders


class Baskets(Protocol):
    async def lock(self, user_id: uuid.UUID) -> None:
        """Serialise changes of one user's basket until the unit ends."""

    async def lines_of(self, user_id: uuid.UUID) -> list[tuple[str, int]]:
        """(menu item id, quantity), in the order the items were first added."""
        ...

    async def write_changes(self, user_id: uuid.UUID, basket_changes: BasketChanges) -> None: ...


class ProcessedOrders(Protocol):
    async def claim(self, order_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """True the first time; False when the order was taken out of its basket already."""
        ...


class BasketUnitOfWork(UnitOfWork, Protocol):
    # Read-only here, so that a unit's own repository classes (Postgres or in-memory) satisfy it.
    @property
    def baskets(self) -> Baskets: ...

    @property
    def processed_orders(self) -> ProcessedOrders: ...


class SqlBasketUnitOfWork(SqlUnitOfWork):
    baskets: Baskets
    processed_orders: ProcessedOrders

    def open_repositories(self, conn: Connection) -> None:
        self.baskets = PostgresBaskets(conn)
        self.processed_orders = PostgresProcessedOrders(conn)
