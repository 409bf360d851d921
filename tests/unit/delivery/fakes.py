"""In-memory delivery for the use-case tests: the deliveries table as a dict with the same rules as
the SQL (storage.py), and orders and kitchen as scripted ports that remember what they were asked."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from sandwich.services.delivery.domain import (
    Delivery,
    DeliveryRefused,
    DeliveryStatus,
    DeliveryUpdate,
    Pickup,
    TakeOutcome,
    refused_take,
    supersedes,
)
from sandwich.services.delivery.ports import OrdersUnavailable
from tests.unit.fakes import FakeUnitOfWork

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeDeliveries:
    def __init__(self) -> None:
        self.rows: dict[str, Delivery] = {}

    async def apply_update(self, update: DeliveryUpdate, pickup: Pickup | None = None) -> bool:
        key = str(update.order_id)
        current = self.rows.get(key)
        if not supersedes(current.version if current else None, update.version):
            return False
        self.rows[key] = Delivery(
            order_id=key,
            status=update.status,
            food_point_id=update.food_point_id or (current.food_point_id if current else None),
            pickup=pickup or (current.pickup if current else None),
            dropoff_address=update.dropoff_address,
            dropoff_lat=update.dropoff_lat,
            dropoff_lon=update.dropoff_lon,
            items=update.items,
            total=update.total,
            courier=update.courier,
            version=update.version,
            ready_at=(current.ready_at if current else None) or update.ready_at,
            taken_at=(current.taken_at if current else None) or update.taken_at,
            completed_at=(current.completed_at if current else None) or update.completed_at,
        )
        return True

    async def state(self, order_id: uuid.UUID) -> tuple[str, str | None] | None:
        row = self.rows.get(str(order_id))
        return (row.status.value, row.courier) if row else None

    async def load(self, order_id: uuid.UUID) -> Delivery | None:
        return self.rows.get(str(order_id))

    async def take(self, order_id: uuid.UUID, courier: str) -> tuple[TakeOutcome, int | None]:
        row = self.rows.get(str(order_id))
        if row is not None and row.offered:
            self._put(row, status=DeliveryStatus.IN_DELIVERY, courier=courier, taken_at=NOW)
            return TakeOutcome.WON, row.version
        return refused_take(await self.state(order_id), courier), None

    async def release(self, order_id: uuid.UUID, courier: str, version: int) -> bool:
        row = self.rows.get(str(order_id))
        if row is None or (row.status, row.courier, row.version) != (
            DeliveryStatus.IN_DELIVERY,
            courier,
            version,
        ):
            return False
        self._put(row, status=DeliveryStatus.READY, courier=None, taken_at=None)
        return True

    async def mark_completed(self, order_id: uuid.UUID, courier: str) -> bool:
        row = self.rows.get(str(order_id))
        if row is None or (row.status, row.courier) != (DeliveryStatus.IN_DELIVERY, courier):
            return False
        self._put(row, status=DeliveryStatus.COMPLETED, completed_at=row.completed_at or NOW)
        return True

    async def offered(self, limit: int) -> list[Delivery]:
        rows = sorted(
            (d for d in self.rows.values() if d.offered), key=lambda d: (d.ready_at or NOW, d.order_id)
        )
        return rows[:limit]

    async def of_courier(self, courier: str, limit: int) -> list[Delivery]:
        mine = [d for d in self.rows.values() if d.courier == courier]
        on_the_way = [d for d in mine if d.status is DeliveryStatus.IN_DELIVERY]
        done = sorted(
            (d for d in mine if d.status is not DeliveryStatus.IN_DELIVERY),
            key=lambda d: d.completed_at or d.taken_at or NOW,
            reverse=True,
        )
        return (on_the_way + done)[:limit]

    async def set_pickup(self, food_point_id: str, pickup: Pickup) -> int:
        lacking = [d for d in self.rows.values() if d.food_point_id == food_point_id and d.pickup is None]
        for row in lacking:
            self._put(row, pickup=pickup)
        return len(lacking)

    async def food_points_missing_pickup(self, limit: int = 100) -> list[str]:
        missing = {
            d.food_point_id
            for d in self.rows.values()
            if d.pickup is None and d.status is DeliveryStatus.READY and d.food_point_id
        }
        return sorted(missing)[:limit]

    def _put(self, row: Delivery, **changes: Any) -> None:
        self.rows[row.order_id] = dataclasses.replace(row, **changes)


class FakeDeliveryUnitOfWork(FakeUnitOfWork):
    repositories = ("deliveries",)

    def __init__(self) -> None:
        super().__init__()
        self.deliveries = FakeDeliveries()


class FakeOrders:
    """orders' transitions: the order back, or what a test scripted (a refusal, orders away, an
    answer that is not an order); `calls` is what delivery asked, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.failure: DeliveryRefused | OrdersUnavailable | None = None
        self.statuses: dict[str, str] = {}

    async def take(self, order_id: str, courier: str) -> dict[str, Any]:
        return self._answer("take", order_id, courier, "in_delivery")

    async def complete(self, order_id: str, courier: str) -> dict[str, Any]:
        return self._answer("complete", order_id, courier, "completed")

    async def status_of(self, order_id: str) -> str | None:
        self.calls.append(("status_of", order_id, None))
        if isinstance(self.failure, OrdersUnavailable):
            raise self.failure
        return self.statuses.get(order_id)

    def _answer(self, action: str, order_id: str, courier: str, status: str) -> dict[str, Any]:
        self.calls.append((action, order_id, courier))
        if self.failure is not None:
            raise self.failure
        return {"order_id": order_id, "status": status, "courier": courier}


class FakeFoodPoints:
    def __init__(self, known: dict[str, Pickup] | None = None) -> None:
        self.known = dict(known or {})
        self.asked: list[str] = []

    async def pickup(self, food_point_id: str) -> Pickup | None:
        self.asked.append(food_point_id)
        return self.known.get(food_point_id)
