"""Notifications' in-memory unit of work and contact book: letters in a dict with a clock the tests
move, taken with leases as the Postgres statement takes them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sandwich.platform.http import ServiceUnavailable
from sandwich.services.notifications.domain import (
    Contact,
    NewNotification,
    Notification,
    NotificationStatus,
    Outgoing,
)
from sandwich.services.notifications.storage import LEASE_SECONDS
from tests.unit.fakes import FakeUnitOfWork

EPOCH = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    letter: NewNotification
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    status: NotificationStatus = NotificationStatus.PENDING
    last_error: str | None = None


class FakeLetters:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.now = 0.0  # seconds since EPOCH; tests move it

    def row(self, notification_id: str) -> Row:
        return self.rows[notification_id]

    def _public(self, row: Row) -> Notification:
        letter = row.letter
        created = EPOCH + timedelta(seconds=row.created_at)
        return Notification(
            letter.notification_id,
            letter.order_id,
            letter.kind,
            letter.channel,
            letter.subject,
            letter.body,
            row.status.value,
            created,
        )

    async def find(self, order_id: str, kind: str) -> Notification | None:
        for row in self.rows.values():
            if (row.letter.order_id, row.letter.kind) == (order_id, kind):
                return self._public(row)
        return None

    async def add(self, notification: NewNotification) -> Notification | None:
        if notification.order_id is not None and await self.find(notification.order_id, notification.kind):
            return None  # ON CONFLICT (order_id, kind) DO NOTHING
        row = Row(
            notification, self.now, self.now, status=notification.status, last_error=notification.last_error
        )
        self.rows[notification.notification_id] = row
        self.now += 0.001  # created_at orders the letters
        return self._public(row)

    async def of_user(self, user_id: str, limit: int) -> list[Notification]:
        mine = [row for row in self.rows.values() if row.letter.user_id == user_id]
        mine.sort(key=lambda row: row.created_at, reverse=True)
        return [self._public(row) for row in mine[:limit]]

    async def take_due(self, limit: int) -> list[Outgoing]:
        due = [
            row
            for row in self.rows.values()
            if row.status is NotificationStatus.PENDING
            and row.next_attempt_at <= self.now
            and row.letter.recipient is not None
        ]
        due.sort(key=lambda row: row.next_attempt_at)
        taken = due[:limit]
        for row in taken:
            self.rows[row.letter.notification_id] = replace(row, next_attempt_at=self.now + LEASE_SECONDS)
        taken.sort(key=lambda row: (row.created_at, row.letter.notification_id))
        return [
            Outgoing(
                r.letter.notification_id,
                r.letter.recipient or "",
                r.letter.subject,
                r.letter.body,
                r.attempts,
            )
            for r in taken
        ]

    async def mark_sent(self, notification_ids: list[str]) -> None:
        for notification_id in notification_ids:
            row = self.rows[notification_id]
            self.rows[notification_id] = replace(
                row, status=NotificationStatus.SENT, attempts=row.attempts + 1, last_error=None
            )

    async def mark_failed(
        self, notification_id: str, error: str, status: NotificationStatus, retry_in: float
    ) -> None:
        row = self.rows[notification_id]
        self.rows[notification_id] = replace(
            row,
            status=status,
            attempts=row.attempts + 1,
            last_error=error[:1000],
            next_attempt_at=self.now + retry_in,
        )

    async def oldest_pending_seconds(self) -> float:
        pending = [row.created_at for row in self.rows.values() if row.status is NotificationStatus.PENDING]
        return self.now - min(pending) if pending else 0.0

    async def release(self, notification_ids: list[str]) -> None:
        for notification_id in notification_ids:
            row = self.rows[notification_id]
            if row.status is NotificationStatus.PENDING:
                self.rows[notification_id] = replace(row, next_attempt_at=self.now)


class FakeNotificationsUnitOfWork(FakeUnitOfWork):
    repositories = ("letters",)

    def __init__(self) -> None:
        super().__init__()
        self.letters = FakeLetters()


class FakeContacts:
    """The users service's answers, and who was asked; `away` makes every look-up fail."""

    def __init__(self, *contacts: Contact):
        self.known = {contact.user_id: contact for contact in contacts}
        self.asked: list[str] = []
        self.away = False

    async def contact(self, user_id: str) -> Contact | None:
        self.asked.append(user_id)
        if self.away:
            raise ServiceUnavailable("users", "away")
        return self.known.get(user_id)
