"""What a use case of menu reads and changes in one go: the menu items (platform/unit_of_work.py).

Menu announces no events; its unit is the transaction that adds an item, or, for a read, one
statement on its own (`statements()`).
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import SqlUnitOfWork, UnitOfWork
from sandwich.services.menu.domain import MenuItem
from sandwich.services.menu.storage import PostgresMenuItems


class MenuItems(Protocol):
    async def add(self, item: MenuItem) -> bool:
        """True when the item was added; False when an item of that name (in any letter case) exists."""
        ...

    async def all(self) -> list[MenuItem]: ...

    async def by_ids(self, ids: list[uuid.UUID]) -> list[MenuItem]:
        """The items of these ids that exist (none asked, none read)."""
        ...


class MenuUnitOfWork(UnitOfWork, Protocol):
    # Read-only here, so that a unit's own repository classes (Postgres or in-memory) satisfy it.
    @property
    def items(self) -> MenuItems: ...


class SqlMenuUnitOfWork(SqlUnitOfWork):
    items: MenuItems

    def open_repositories(self, conn: Connection) -> None:
        self.items = PostgresMenuItems(conn)
