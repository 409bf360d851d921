"""A real PostgreSQL database for the kitchen's storage and assigner: one per test session, dropped after.

The server is $DATABASE_URL or the session's embedded one (tests/engines.py); the
database gets a unique name, so parallel runs on one server never meet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import sandwich.services.kitchen as kitchen_package
from sandwich.platform.db import Database
from sandwich.platform.http import Response
from sandwich.services.kitchen.domain import Recipe
from sandwich.services.kitchen.ports import OrdersAway, agreed
from tests.integration.scratch import scratch_database

MIGRATIONS = Path(kitchen_package.__file__).parent / "migrations"


@pytest.fixture(scope="session")
async def kitchen_db() -> AsyncIterator[Database]:
    async with scratch_database("kitchen", MIGRATIONS) as db:
        yield db


@pytest.fixture
async def db(kitchen_db: Database) -> Database:
    """The session's database, emptied before each test."""
    async with kitchen_db.begin() as conn:
        await conn.execute(text("TRUNCATE assignments, pending_orders, stock, food_points, inbox"))
    return kitchen_db


class FakeOrders:
    """orders as the kitchen sees it: records the calls; answers 200 unless told otherwise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.status = 200
        self.down = False

    async def _answer(self, verb: str, order_id: str, arg: str) -> Any:
        """What orders' HTTP answer (`status`) means to the kitchen: the port's own reading of it."""
        if self.down:
            raise OrdersAway("orders is down")
        self.calls.append((verb, order_id, arg))
        if self.status == 200:
            return agreed(Response(200, {"order_id": order_id, "status": verb}), verb, order_id)
        refused = {"error": {"code": "illegal_transition", "message": "no"}}
        return agreed(Response(self.status, refused), verb, order_id)

    async def assign(self, order_id: str, food_point_id: str) -> None:
        await self._answer("assigned", order_id, food_point_id)

    async def ready(self, order_id: str, food_point_id: str) -> dict[str, Any]:
        order: dict[str, Any] = await self._answer("ready", order_id, food_point_id)
        return order

    async def cancel(self, order_id: str, reason: str) -> None:
        await self._answer("cancelled", order_id, reason)

    async def status_of(self, order_id: str) -> str | None:
        return None

    def of(self, verb: str) -> list[tuple[str, str, str]]:
        return [call for call in self.calls if call[0] == verb]


class FakeRecipes:
    def __init__(self, recipes: dict[str, Recipe]) -> None:
        self.book = recipes

    async def recipes(self, menu_item_ids: Iterable[str]) -> dict[str, Recipe]:
        return {i: self.book[i] for i in menu_item_ids if i in self.book}


@pytest.fixture
def orders() -> FakeOrders:
    return FakeOrders()
