"""basket in memory: the baskets, the paid orders already taken out, and a menu that can be away."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sandwich.services.basket.domain import BasketChanges, MenuEntry
from sandwich.services.basket.ports import MenuUnavailable
from tests.unit.fakes import FakeUnitOfWork


class FakeBaskets:
    def __init__(self) -> None:
        self.lines: dict[uuid.UUID, dict[str, int]] = {}
        self.locked: list[uuid.UUID] = []

    async def lock(self, user_id: uuid.UUID) -> None:
        self.locked.append(user_id)

    async def lines_of(self, user_id: uuid.UUID) -> list[tuple[str, int]]:
        return list(self.lines.get(user_id, {}).items())  # a dict keeps the order lines were added in

    async def write_changes(self, user_id: uuid.UUID, basket_changes: BasketChanges) -> None:
        basket = self.lines.setdefault(user_id, {})
        for item, quantity in basket_changes.upserts.items():
            assert quantity > 0, "a line at 0 never reaches the table"
            basket[item] = quantity
        for item in basket_changes.removals:
            del basket[item]


class FakeProcessedOrders:
    def __init__(self) -> None:
        self.claimed: dict[uuid.UUID, uuid.UUID] = {}

    async def claim(self, order_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        if order_id in self.claimed:
            return False
        self.claimed[order_id] = user_id
        return True


class FakeBasketUnitOfWork(FakeUnitOfWork):
    repositories = ("baskets", "processed_orders")

    def __init__(self) -> None:
        super().__init__()
        self.baskets = FakeBaskets()
        self.processed_orders = FakeProcessedOrders()


class FakeMenu:
    """The menu's items; `up = False` makes it unreachable. Records each lookup's ids."""

    def __init__(self, entries: dict[str, MenuEntry]) -> None:
        self.entries = entries
        self.up = True
        self.asked: list[list[str]] = []

    async def lookup(self, menu_item_ids: Iterable[str]) -> dict[str, MenuEntry]:
        ids = sorted(set(menu_item_ids))
        self.asked.append(ids)
        if not self.up:
            raise MenuUnavailable("menu is down")
        return {item: self.entries[item] for item in ids if item in self.entries}
