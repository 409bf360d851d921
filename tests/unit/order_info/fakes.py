"""In-memory order_info for the use-case tests: the read model as records the domain's own rule
changes (domain.apply_update, the rule the SQL implements), and orders' copy as a scripted port."""

from __future__ import annotations

import uuid
from typing import Any

from sandwich.services.order_info.domain import HistoryEntry, OrderRecord, OrderUpdate, apply_update
from sandwich.services.order_info.ports import WrittenOrder
from tests.unit.fakes import FakeUnitOfWork


class FakeOrderViews:
    def __init__(self) -> None:
        self.records: dict[str, OrderRecord] = {}

    async def apply(self, update: OrderUpdate) -> bool:
        before = self.records.get(update.order_id, OrderRecord())
        after = apply_update(before, update)
        self.records[update.order_id] = after
        return after.view is not before.view

    async def view(self, order_id: uuid.UUID) -> tuple[str, dict[str, Any]] | None:
        record = self.records.get(str(order_id))
        if record is None or record.view is None:
            return None
        return record.view.user_id, dict(record.view.snapshot)

    async def history(self, order_id: uuid.UUID) -> list[HistoryEntry]:
        record = self.records.get(str(order_id), OrderRecord())
        return [record.history[version] for version in sorted(record.history)]

    async def of_user(self, user_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
        views = [
            r.view for r in self.records.values() if r.view is not None and r.view.user_id == str(user_id)
        ]
        views.sort(key=lambda view: (view.created_at, view.order_id), reverse=True)
        return [dict(view.snapshot) for view in views[:limit]]

    async def current_status(self, order_id: uuid.UUID) -> tuple[str, HistoryEntry] | None:
        record = self.records.get(str(order_id))
        if record is None or record.view is None:
            return None
        view = record.view
        entry = record.history.get(view.version)
        at = entry.at if entry is not None else view.updated_at
        return view.user_id, HistoryEntry(view.version, view.status, at)

    async def history_after(self, order_id: uuid.UUID, version: int) -> list[HistoryEntry]:
        return [entry for entry in await self.history(order_id) if entry.version > version]


class FakeOrderInfoUnitOfWork(FakeUnitOfWork):
    repositories = ("views",)

    def __init__(self) -> None:
        super().__init__()
        self.views = FakeOrderViews()


class FakeWriteSide:
    """orders' copies by order id; `asked` is every order id looked up."""

    def __init__(self) -> None:
        self.orders: dict[uuid.UUID, WrittenOrder] = {}
        self.asked: list[uuid.UUID] = []

    async def order(self, order_id: uuid.UUID) -> WrittenOrder | None:
        self.asked.append(order_id)
        return self.orders.get(order_id)
