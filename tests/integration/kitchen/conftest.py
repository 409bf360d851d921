"""A real PostgreSQL database for the kitchen's storage and assigner: one per test session, dropped after.

The server is $DATABASE_URL or the session's embedded one (tests/engines.py); the
database gets a unique name, so parallel runs on one server never meet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from sqlalchemy import text

import sandwich.services.kitchen as kitchen_package
from sandwich.platform.db import Database
from sandwich.services.kitchen.domain import Recipe
from tests.integration.scratch import scratch_database
from tests.unit.kitchen.fakes import FakeOrders

__all__ = ["FakeOrders", "FakeRecipes"]

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


class FakeRecipes:
    def __init__(self, recipes: dict[str, Recipe]) -> None:
        self.book = recipes

    async def recipes(self, menu_item_ids: Iterable[str]) -> dict[str, Recipe]:
        return {i: self.book[i] for i in menu_item_ids if i in self.book}


@pytest.fixture
def orders() -> FakeOrders:
    return FakeOrders()
