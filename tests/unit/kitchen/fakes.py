"""In-memory kitchen for the use-case tests: its four tables and the supply version as one object
(`KitchenTables`, what the fake unit of work keeps or forgets as a whole), seen through repositories
with the same rules as the SQL in storage/; orders as a scripted port that remembers what it was asked."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sandwich.platform.http import Response
from sandwich.services.kitchen.domain import (
    HOLDING_STATES,
    Assignment,
    AssignmentState,
    FoodPoint,
    PendingOrder,
    PointState,
)
from sandwich.services.kitchen.ports import OrdersAway, agreed
from sandwich.services.kitchen.storage import EDITABLE_FIELDS
from tests.unit.fakes import FakeUnitOfWork

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class KitchenTables:
    """food_points, stock, pending_orders, assignments and supply, as plain values."""

    def __init__(self) -> None:
        self.points: dict[str, FoodPoint] = {}
        self.stock: dict[str, dict[str, int]] = {}
        self.pending: dict[str, PendingOrder] = {}
        self.attempts: dict[str, int] = {}
        self.tried_at: dict[str, int] = {}
        self.cancel_requested: set[str] = set()
        self.assignments: dict[str, Assignment] = {}
        self.confirm_attempts: dict[str, int] = {}
        self.supply = 1
        self.notifications = 0  # NOTIFYs to the assigners, kept only with a commit (as Connection.notify)
        self.locked_elsewhere: set[str] = set()  # pending orders another transaction works on

    def free_slot(self, food_point_id: str) -> None:
        point = self.points[food_point_id]
        self.points[food_point_id] = dataclasses.replace(point, active_orders=point.active_orders - 1)


class FakeFoodPoints:
    def __init__(self, tables: KitchenTables) -> None:
        self.t = tables

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
    ) -> FoodPoint:
        self.t.supply += 1
        point = FoodPoint(
            food_point_id=food_point_id or str(uuid.uuid4()),
            name=name,
            address=address,
            lat=lat,
            lon=lon,
            capacity=capacity,
            accepts_delivery=accepts_delivery,
            active_orders=0,
            created_at=NOW,
        )
        self.t.points[point.food_point_id] = point
        return point

    async def change(self, food_point_id: uuid.UUID, changes: Mapping[str, Any]) -> FoodPoint | None:
        self.t.supply += 1
        point = self.t.points.get(str(food_point_id))
        if point is None:
            return None
        fields = {name: changes[name] for name in EDITABLE_FIELDS if name in changes}
        self.t.points[point.food_point_id] = changed = dataclasses.replace(point, **fields)
        return changed

    async def get(self, food_point_id: uuid.UUID) -> FoodPoint | None:
        return self.t.points.get(str(food_point_id))

    async def all(self) -> list[FoodPoint]:
        return sorted(self.t.points.values(), key=lambda p: (p.created_at, p.food_point_id))

    async def stock_of(self, food_point_id: uuid.UUID | None = None) -> dict[str, dict[str, int]]:
        wanted = [str(food_point_id)] if food_point_id is not None else list(self.t.stock)
        return {key: dict(sorted(self.t.stock[key].items())) for key in wanted if self.t.stock.get(key)}

    async def put_stock(self, food_point_id: uuid.UUID, ingredient: str, quantity: int) -> bool:
        self.t.supply += 1
        if str(food_point_id) not in self.t.points:
            return False
        self.t.stock.setdefault(str(food_point_id), {})[ingredient] = quantity
        return True

    async def candidate_snapshot(self, needs: Mapping[str, int]) -> tuple[int, list[PointState]]:
        points = [
            PointState(
                food_point_id=p.food_point_id,
                lat=p.lat,
                lon=p.lon,
                capacity=p.capacity,
                active_orders=p.active_orders,
                accepts_delivery=p.accepts_delivery,
                stock={k: v for k, v in self.t.stock.get(p.food_point_id, {}).items() if k in needs},
            )
            for p in self.t.points.values()
            if p.accepts_delivery and p.active_orders < p.capacity
        ]
        return self.t.supply, points

    async def candidates(self, needs: Mapping[str, int]) -> list[PointState]:
        return (await self.candidate_snapshot(needs))[1]

    async def reserve(self, food_point_id: str, needs: Mapping[str, int]) -> bool:
        point = self.t.points[food_point_id]
        stock = self.t.stock.get(food_point_id, {})
        if not (point.accepts_delivery and point.active_orders < point.capacity):
            return False
        if any(stock.get(name, 0) < need for name, need in needs.items()):
            return False
        self.t.points[food_point_id] = dataclasses.replace(point, active_orders=point.active_orders + 1)
        for name, need in needs.items():
            stock[name] -= need
        return True


class FakePendingOrders:
    def __init__(self, tables: KitchenTables) -> None:
        self.t = tables

    async def add(self, order: PendingOrder) -> bool:
        if order.order_id in self.t.assignments or order.order_id in self.t.pending:
            return False
        self.t.pending[order.order_id] = order
        return True

    def _waiting(self) -> list[PendingOrder]:
        waiting = [o for o in self.t.pending.values() if o.order_id not in self.t.cancel_requested]
        return sorted(waiting, key=lambda o: (o.paid_at, o.order_id))

    async def untried(self, limit: int = 500) -> tuple[int, list[Any]]:
        return self.t.supply, [o for o in self._waiting() if o.order_id not in self.t.tried_at][:limit]

    async def worth_trying(
        self,
        limit: int = 500,
        timeout_seconds: float = 600.0,
        *,
        stale_before: int | None = None,
        with_expired: bool = True,
        untried: list[Any] | None = None,
    ) -> list[PendingOrder]:
        def wanted(order: PendingOrder) -> bool:
            tried = self.t.tried_at.get(order.order_id)
            expired = (NOW - order.paid_at).total_seconds() > timeout_seconds
            stale = stale_before is not None and tried is not None and tried < stale_before
            return tried is None or (with_expired and expired) or stale

        return [order for order in self._waiting() if wanted(order)][:limit]

    async def lock(self, order_id: str, timeout_seconds: float) -> tuple[PendingOrder, bool] | None:
        order = self.t.pending.get(order_id)
        if order is None or order_id in self.t.cancel_requested or order_id in self.t.locked_elsewhere:
            return None
        return order, (datetime.now(UTC) - order.paid_at).total_seconds() > timeout_seconds

    async def note_attempt(self, order_id: str, tried_at_supply: int | None = None) -> None:
        await self.note_attempts([order_id], tried_at_supply)

    async def note_attempts(self, order_ids: list[str], tried_at_supply: int | None = None) -> None:
        for order_id in order_ids:
            if order_id in self.t.pending:
                self.t.attempts[order_id] = self.t.attempts.get(order_id, 0) + 1
                if tried_at_supply is not None:
                    self.t.tried_at[order_id] = tried_at_supply

    async def request_cancel(self, order_id: str) -> None:
        if order_id in self.t.pending:
            self.t.cancel_requested.add(order_id)

    async def cancellations_due(self, older_than_seconds: float, limit: int = 100) -> list[str]:
        return sorted(self.t.cancel_requested)[:limit]

    async def drop(self, order_id: str) -> bool:
        self.t.cancel_requested.discard(order_id)
        return self.t.pending.pop(order_id, None) is not None


class FakeAssignments:
    def __init__(self, tables: KitchenTables) -> None:
        self.t = tables

    async def record(self, order: PendingOrder, food_point_id: str, needs: Mapping[str, int]) -> None:
        assert order.order_id not in self.t.assignments, "an order has at most one assignment row"
        self.t.assignments[order.order_id] = Assignment(
            order_id=order.order_id,
            food_point_id=food_point_id,
            user_id=order.user_id,
            username=order.username,
            items=order.items,
            needs=dict(needs),
            delivery=order.delivery,
            state=AssignmentState.RESERVED,
            paid_at=order.paid_at,
            assigned_at=NOW,
        )

    async def get(self, order_id: uuid.UUID) -> Assignment | None:
        return self.t.assignments.get(str(order_id))

    async def at(
        self, food_point_id: uuid.UUID, states: tuple[str, ...] = HOLDING_STATES
    ) -> list[Assignment]:
        found = [
            a
            for a in self.t.assignments.values()
            if a.food_point_id == str(food_point_id) and a.state in states
        ]
        return sorted(found, key=lambda a: (a.assigned_at, a.order_id))

    def _move(self, order_id: str, to: AssignmentState) -> None:
        self.t.assignments[order_id] = dataclasses.replace(self.t.assignments[order_id], state=to)

    async def confirm(self, order_id: str, food_point_id: str | None = None) -> bool:
        found = self.t.assignments.get(order_id)
        if found is None or found.state is not AssignmentState.RESERVED:
            return False
        if food_point_id is not None and found.food_point_id != food_point_id:
            return False
        self._move(order_id, AssignmentState.CONFIRMED)
        return True

    async def unconfirmed(self, older_than_seconds: float, limit: int = 100) -> list[tuple[str, str]]:
        reserved = [a for a in self.t.assignments.values() if a.state is AssignmentState.RESERVED]
        return [(a.order_id, a.food_point_id) for a in reserved][:limit]

    async def note_confirm_attempt(self, order_id: str) -> None:
        self.t.confirm_attempts[order_id] = self.t.confirm_attempts.get(order_id, 0) + 1

    async def release(self, order_id: str, states: tuple[str, ...] = HOLDING_STATES) -> str | None:
        self.t.supply += 1
        found = self.t.assignments.get(order_id)
        if found is None or found.state not in states:
            return None
        self._move(order_id, AssignmentState.RELEASED)
        self.t.free_slot(found.food_point_id)
        stock = self.t.stock.setdefault(found.food_point_id, {})
        for name, amount in found.needs.items():
            stock[name] = stock.get(name, 0) + amount
        return found.food_point_id

    async def mark_ready(self, order_id: str) -> str | None:
        self.t.supply += 1
        found = self.t.assignments.get(order_id)
        if found is None or found.state not in HOLDING_STATES:
            return None
        self._move(order_id, AssignmentState.READY)
        self.t.free_slot(found.food_point_id)
        return found.food_point_id


class FakeSupply:
    def __init__(self, tables: KitchenTables) -> None:
        self.t = tables

    async def version(self) -> int:
        return self.t.supply

    async def bump(self) -> None:
        self.t.supply += 1

    def notify_assigner(self) -> None:
        self.t.notifications += 1


class FakeKitchenUnitOfWork(FakeUnitOfWork):
    """Every repository is a view of `tables`, the one thing kept on commit or forgotten without."""

    repositories = ("tables",)

    def __init__(self) -> None:
        super().__init__()
        self.tables = KitchenTables()
        self.food_points = FakeFoodPoints(self.tables)
        self.pending = FakePendingOrders(self.tables)
        self.assignments = FakeAssignments(self.tables)
        self.supply = FakeSupply(self.tables)


class FakeOrders:
    """orders as the kitchen sees it (the unit and the integration tests both use it): answers
    `status` (200 unless told) and remembers the calls; `order_status` is what GET answers the
    order's status is (None: 404)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.status = 200
        self.down = False
        self.order_status: str | None = None

    async def _answer(self, verb: str, order_id: str, arg: str) -> Any:
        """What orders' HTTP answer (`status`) means to the kitchen: the port's own reading of it."""
        if self.down:
            raise OrdersAway("orders is down")
        self.calls.append((verb, order_id, arg))
        if self.status == 200:
            return agreed(Response(200, {"order_id": order_id, "status": verb}), verb, order_id)
        refused = {"error": {"code": "illegal_transition", "message": "orders says no"}}
        return agreed(Response(self.status, refused), verb, order_id)

    async def assign(self, order_id: str, food_point_id: str) -> None:
        await self._answer("assigned", order_id, food_point_id)

    async def ready(self, order_id: str, food_point_id: str) -> dict[str, Any]:
        order: dict[str, Any] = await self._answer("ready", order_id, food_point_id)
        return order

    async def cancel(self, order_id: str, reason: str) -> None:
        await self._answer("cancelled", order_id, reason)

    async def status_of(self, order_id: str) -> str | None:
        return self.order_status

    def of(self, verb: str) -> list[tuple[str, str, str]]:
        return [call for call in self.calls if call[0] == verb]


class Wakes:
    """The `wake` port: counts the wake-ups of this process's assigner."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
