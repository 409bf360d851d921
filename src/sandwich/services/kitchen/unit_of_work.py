"""The kitchen's unit of work: its repositories (food points and stock, waiting orders, assignments,
the supply version) on one connection, as the use cases in commands.py see them.

The kitchen writes no outbox events (it tells orders over HTTP, after its own commit); what it
announces is a NOTIFY to every assigner (`supply.notify_assigner`), sent only once the work has
committed. `statements()` is the same unit with each statement on its own (`Database.connect`), for
the reads and one-statement writes that never used BEGIN/COMMIT (the assigner's hot path).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from sandwich.platform.db import Database
from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import Announce, SqlUnitOfWork, UnitOfWork
from sandwich.services.kitchen.domain import (
    HOLDING_STATES,
    Assignment,
    FoodPoint,
    PendingOrder,
    PointState,
)
from sandwich.services.kitchen.storage import (
    PostgresAssignments,
    PostgresFoodPoints,
    PostgresPendingOrders,
    Supply,
)


class FoodPointRepository(Protocol):
    async def add(
        self,
        *,
        name: str,
        address: str,
        lat: float,
        lon: float,
        capacity: int,
        accepts_delivery: bool,
        food_point_id: str | None = None,
    ) -> FoodPoint: ...

    async def change(self, food_point_id: uuid.UUID, changes: Mapping[str, Any]) -> FoodPoint | None: ...

    async def get(self, food_point_id: uuid.UUID) -> FoodPoint | None: ...

    async def all(self) -> list[FoodPoint]: ...

    async def stock_of(self, food_point_id: uuid.UUID | None = None) -> dict[str, dict[str, int]]: ...

    async def put_stock(self, food_point_id: uuid.UUID, ingredient: str, quantity: int) -> bool: ...

    async def candidate_snapshot(self, needs: Mapping[str, int]) -> tuple[int, list[PointState]]: ...

    async def candidates(self, needs: Mapping[str, int]) -> list[PointState]: ...

    async def reserve(self, food_point_id: str, needs: Mapping[str, int]) -> bool: ...


class PendingOrderRepository(Protocol):
    async def add(self, order: PendingOrder) -> bool: ...

    async def untried(self, limit: int = 500) -> tuple[int, list[Any]]: ...

    async def worth_trying(
        self,
        limit: int = 500,
        timeout_seconds: float = 600.0,
        *,
        stale_before: int | None = None,
        with_expired: bool = True,
        untried: list[Any] | None = None,
    ) -> list[PendingOrder]: ...

    async def lock(self, order_id: str, timeout_seconds: float) -> tuple[PendingOrder, bool] | None: ...

    async def note_attempt(self, order_id: str, tried_at_supply: int | None = None) -> None: ...

    async def note_attempts(self, order_ids: list[str], tried_at_supply: int | None = None) -> None: ...

    async def request_cancel(self, order_id: str) -> None: ...

    async def cancellations_due(self, older_than_seconds: float, limit: int = 100) -> list[str]: ...

    async def drop(self, order_id: str) -> bool: ...


class AssignmentRepository(Protocol):
    async def record(self, order: PendingOrder, food_point_id: str, needs: Mapping[str, int]) -> None: ...

    async def get(self, order_id: uuid.UUID) -> Assignment | None: ...

    async def at(
        self, food_point_id: uuid.UUID, states: tuple[str, ...] = HOLDING_STATES
    ) -> list[Assignment]: ...

    async def confirm(self, order_id: str, food_point_id: str | None = None) -> bool: ...

    async def unconfirmed(self, older_than_seconds: float, limit: int = 100) -> list[tuple[str, str]]: ...

    async def note_confirm_attempt(self, order_id: str) -> None: ...

    async def release(self, order_id: str, states: tuple[str, ...] = HOLDING_STATES) -> str | None: ...

    async def mark_ready(self, order_id: str) -> str | None: ...


class SupplyRepository(Protocol):
    async def version(self) -> int: ...

    async def bump(self) -> None: ...

    def notify_assigner(self) -> None: ...


class KitchenUnitOfWork(UnitOfWork, Protocol):
    """Repositories are read-only here, so a fake's own repository classes fit."""

    @property
    def food_points(self) -> FoodPointRepository: ...

    @property
    def pending(self) -> PendingOrderRepository: ...

    @property
    def assignments(self) -> AssignmentRepository: ...

    @property
    def supply(self) -> SupplyRepository: ...

    def statements(self) -> KitchenUnitOfWork: ...


class SqlKitchenUnitOfWork(SqlUnitOfWork):
    food_points: FoodPointRepository
    pending: PendingOrderRepository
    assignments: AssignmentRepository
    supply: SupplyRepository

    def __init__(self, database: Database, announce: Announce | None = None, *, atomic: bool = True):
        # The kitchen writes no outbox events: by default there is nothing to announce.
        super().__init__(database, announce, atomic=atomic)

    def open_repositories(self, conn: Connection) -> None:
        self.food_points = PostgresFoodPoints(conn)
        self.pending = PostgresPendingOrders(conn)
        self.assignments = PostgresAssignments(conn)
        self.supply = Supply(conn)
