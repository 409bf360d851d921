"""What a use case of order_info reads and changes in one go: the read model, the views of orders
and their histories (platform/unit_of_work.py). order_info records no events: it only listens.

The Postgres repository keeps the existing statements (storage.py); the tests' fake keeps records in
a dict and applies the domain's rule (tests/unit/order_info/fakes.py).
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import SqlUnitOfWork, UnitOfWork
from sandwich.services.order_info.domain import HistoryEntry, OrderUpdate
from sandwich.services.order_info.storage import PostgresOrderViews


class OrderViews(Protocol):
    async def apply(self, update: OrderUpdate) -> bool:
        """The history entry if absent, the view if the event is newer; True when the view changed."""
        ...

    async def view(self, order_id: uuid.UUID) -> tuple[str, dict[str, Any]] | None:
        """(owner user id, snapshot), or None when the read model has not seen the order."""
        ...

    async def history(self, order_id: uuid.UUID) -> list[HistoryEntry]:
        """Oldest first, with trace ids."""
        ...

    async def of_user(self, user_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
        """Snapshots of a user's orders, newest first."""
        ...

    async def current_status(self, order_id: uuid.UUID) -> tuple[str, HistoryEntry] | None:
        """(owner user id, the history entry of the version the view shows), or None when unseen."""
        ...

    async def history_after(self, order_id: uuid.UUID, version: int) -> list[HistoryEntry]:
        """The entries of versions above `version`, oldest first."""
        ...


class OrderInfoUnitOfWork(UnitOfWork, Protocol):
    @property
    def views(self) -> OrderViews:
        """Read-only here, so that a fake's own repository class satisfies it too."""
        ...


class SqlOrderInfoUnitOfWork(SqlUnitOfWork):
    views: OrderViews

    def open_repositories(self, conn: Connection) -> None:
        self.views = PostgresOrderViews(conn)
