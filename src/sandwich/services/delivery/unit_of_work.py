"""What a use case of delivery reads and changes in one go: the deliveries table
(platform/unit_of_work.py). Delivery records no events of its own: orders, the write side, announces
every change of an order, delivery's takes included.

The Postgres repository keeps the existing statements (storage.py); the tests' fake keeps the rows
in a dict (tests/unit/delivery/fakes.py).
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import SqlUnitOfWork, UnitOfWork
from sandwich.services.delivery.domain import Delivery, DeliveryUpdate, Pickup, TakeOutcome
from sandwich.services.delivery.storage import PostgresDeliveries


class Deliveries(Protocol):
    """Delivery's copy of the orders a courier may deal with, one row per order."""

    async def apply_update(self, update: DeliveryUpdate, pickup: Pickup | None = None) -> bool:
        """Apply one order event if it is newer than the row (domain.supersedes); True when changed."""
        ...

    async def state(self, order_id: uuid.UUID) -> tuple[str, str | None] | None:
        """(status, courier) of one delivery, or None when there is no row for the order."""
        ...

    async def load(self, order_id: uuid.UUID) -> Delivery | None: ...

    async def take(self, order_id: uuid.UUID, courier: str) -> tuple[TakeOutcome, int | None]:
        """(WON, the row's version) for exactly one of any number of concurrent callers; else why not."""
        ...

    async def release(self, order_id: uuid.UUID, courier: str, version: int) -> bool:
        """Undo `courier`'s take made at `version` (not one orders confirmed since); True if undone."""
        ...

    async def mark_completed(self, order_id: uuid.UUID, courier: str) -> bool: ...

    async def offered(self, limit: int) -> list[Delivery]:
        """Deliveries ready and not taken, oldest first."""
        ...

    async def of_courier(self, courier: str, limit: int) -> list[Delivery]:
        """The courier's deliveries: the ones on the way first, then the latest delivered."""
        ...

    async def set_pickup(self, food_point_id: str, pickup: Pickup) -> int:
        """Fill in the pickup point of every delivery from this food point that lacks it."""
        ...

    async def food_points_missing_pickup(self, limit: int = 100) -> list[str]: ...


class DeliveryUnitOfWork(UnitOfWork, Protocol):
    @property
    def deliveries(self) -> Deliveries:
        """Read-only here, so that a fake's own repository class satisfies it too."""
        ...


class SqlDeliveryUnitOfWork(SqlUnitOfWork):
    deliveries: Deliveries

    def open_repositories(self, conn: Connection) -> None:
        self.deliveries = PostgresDeliveries(conn)
