"""menu in memory: its items, kept by id, with names unique letter case aside as the table keeps them."""

from __future__ import annotations

import uuid

from sandwich.services.menu.domain import MenuItem
from tests.unit.fakes import FakeUnitOfWork


class FakeMenuItems:
    def __init__(self) -> None:
        self.rows: dict[str, MenuItem] = {}
        # The ids each by_ids was asked, in order; private, so a read's ending does not forget it.
        self._lookups: list[list[uuid.UUID]] = []

    async def add(self, item: MenuItem) -> bool:
        if item.id in self.rows or any(row.name.lower() == item.name.lower() for row in self.rows.values()):
            return False
        self.rows[item.id] = item
        return True

    async def all(self) -> list[MenuItem]:
        return sorted(self.rows.values(), key=lambda item: (item.name, item.id))  # the table's order

    @property
    def lookups(self) -> list[list[uuid.UUID]]:
        return list(self._lookups)

    async def by_ids(self, ids: list[uuid.UUID]) -> list[MenuItem]:
        self._lookups.append(list(ids))
        wanted = {str(item_id) for item_id in ids}
        return [item for item in await self.all() if item.id in wanted]


class FakeMenuUnitOfWork(FakeUnitOfWork):
    repositories = ("items",)

    def __init__(self) -> None:
        super().__init__()
        self.items = FakeMenuItems()
