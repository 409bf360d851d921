"""Notifications' unit of work: the stored letters on one connection.

Notifications publishes no events. The sender's statements are each atomic on their own (taking due
letters with a lease, marking a batch sent, releasing at a stop) and run with `atomic=False`, no
BEGIN and COMMIT; recording a letter (look up, insert) and a batch with failures take a transaction.
"""

from __future__ import annotations

from typing import Protocol

from sandwich.platform.db import Database
from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import SqlUnitOfWork, UnitOfWork
from sandwich.services.notifications.domain import NewNotification, Notification, NotificationStatus, Outgoing
from sandwich.services.notifications.storage import PostgresLetters


class Letters(Protocol):
    async def find(self, order_id: str, kind: str) -> Notification | None: ...

    async def add(self, notification: NewNotification) -> Notification | None:
        """None when this order already has a letter of this kind."""
        ...

    async def of_user(self, user_id: str, limit: int) -> list[Notification]: ...

    async def take_due(self, limit: int) -> list[Outgoing]:
        """Due pending letters, taken with a lease (storage.LEASE_SECONDS)."""
        ...

    async def mark_sent(self, notification_ids: list[str]) -> None: ...

    async def mark_failed(
        self, notification_id: str, error: str, status: NotificationStatus, retry_in: float
    ) -> None: ...

    async def oldest_pending_seconds(self) -> float: ...

    async def release(self, notification_ids: list[str]) -> None: ...


class NotificationsUnitOfWork(UnitOfWork, Protocol):
    # Read-only here, so that a unit's own repository class (Postgres or in-memory) satisfies it.
    @property
    def letters(self) -> Letters: ...


class UnitsOfWork(Protocol):
    """Makes a unit: `atomic=False` for a use case whose one statement is atomic on its own."""

    def __call__(self, *, atomic: bool = True) -> NotificationsUnitOfWork: ...


class SqlNotificationsUnitOfWork(SqlUnitOfWork):
    letters: Letters

    def open_repositories(self, conn: Connection) -> None:
        self.letters = PostgresLetters(conn)


def sql_units_of_work(database: Database) -> UnitsOfWork:
    def unit_of_work(*, atomic: bool = True) -> NotificationsUnitOfWork:
        return SqlNotificationsUnitOfWork(database, None, atomic=atomic)

    return unit_of_work
