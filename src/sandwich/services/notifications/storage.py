"""The notifications table of the notifications database: the letters repository of the unit of
work, and the consumer's one-statement insert (`insert_effect`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from sandwich.platform.inbox import CLAIMED, Effect
from sandwich.platform.sql import Connection, Row
from sandwich.services.notifications.domain import NewNotification, Notification, NotificationStatus, Outgoing

_PUBLIC = (
    "notification_id::text AS notification_id, order_id::text AS order_id, kind, channel, subject, body, "
    "status, created_at"
)


def _public(row: Any) -> Notification:
    return Notification(
        row.notification_id,
        row.order_id,
        row.kind,
        row.channel,
        row.subject,
        row.body,
        row.status,
        row.created_at,
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


_INSERT_VALUES = (
    "SELECT :notification_id, :user_id, :order_id, :kind, :channel, :recipient, :subject, :body, :status, "
    ":last_error"
)
_INSERT = (
    "INSERT INTO notifications (notification_id, user_id, order_id, kind, channel, recipient, subject, body, "
    "status, last_error) {values} ON CONFLICT (order_id, kind) DO NOTHING"
)
_INSERT_LEASED = (
    "INSERT INTO notifications (notification_id, user_id, order_id, kind, channel, recipient, subject, body, "
    "status, last_error, next_attempt_at) {values} ON CONFLICT (order_id, kind) DO NOTHING"
)


def _insert_params(notification: NewNotification) -> dict[str, Any]:
    return {
        "notification_id": uuid.UUID(notification.notification_id),
        "user_id": uuid.UUID(notification.user_id),
        "order_id": _uuid(notification.order_id),
        "kind": notification.kind,
        "channel": notification.channel,
        "recipient": notification.recipient,
        "subject": notification.subject,
        "body": notification.body,
        "status": notification.status.value,
        "last_error": notification.last_error,
    }


def insert_effect(notification: NewNotification, handed_over: Callable[[Outgoing], None]) -> Effect:
    """The same insert as a consumer's Effect: written only when the inbox claim is new.

    A pending letter is stored already taken (leased, as take_due would) and given to
    `handed_over` once the statement committed: the sender sends it from memory, with no lookup;
    should the process die first, the lease runs out and the sender's poll finds it."""
    leased = notification.status is NotificationStatus.PENDING and notification.recipient is not None
    values = _INSERT_VALUES + (", clock_timestamp() + make_interval(secs => :lease)" if leased else "")
    statement = (_INSERT_LEASED if leased else _INSERT).format(values=f"{values} WHERE {CLAIMED}")

    def committed(row: Row) -> None:
        if leased and row.stored:
            assert notification.recipient is not None
            handed_over(
                Outgoing(
                    notification.notification_id,
                    notification.recipient,
                    notification.subject,
                    notification.body,
                    0,
                )
            )

    return Effect(
        f"stored AS ({statement} RETURNING 1)",
        {**_insert_params(notification), "lease": LEASE_SECONDS},
        result="(SELECT count(*) FROM stored) AS stored",
        committed=committed,
    )


LEASE_SECONDS = 60.0
"""How long a picked letter is left to its sender before another sender may take it (a sender that
died between sending and recording it)."""

_FIND = text(f"SELECT {_PUBLIC} FROM notifications WHERE order_id = :order_id AND kind = :kind")
_INSERTED = text(_INSERT.format(values=_INSERT_VALUES) + f" RETURNING {_PUBLIC}")
_OF_USER = text(
    f"SELECT {_PUBLIC} FROM notifications WHERE user_id = :user_id "
    "ORDER BY created_at DESC, notification_id DESC LIMIT :limit"
)
_TAKE_DUE = text(
    "UPDATE notifications SET next_attempt_at = clock_timestamp() + make_interval(secs => :lease) "
    "WHERE notification_id IN (SELECT notification_id FROM notifications "
    "WHERE status = 'pending' AND next_attempt_at <= now() AND recipient IS NOT NULL "
    "ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
    "RETURNING notification_id::text AS notification_id, recipient, subject, body, attempts, "
    "created_at"
)
_MARK_SENT = text(
    "UPDATE notifications SET status = 'sent', attempts = attempts + 1, last_error = NULL, "
    "sent_at = clock_timestamp() WHERE notification_id = ANY(:ids)"
)
_MARK_FAILED = text(
    "UPDATE notifications SET status = :status, attempts = attempts + 1, last_error = :error, "
    "next_attempt_at = clock_timestamp() + make_interval(secs => :retry_in) "
    "WHERE notification_id = :id"
)
_OLDEST_PENDING = text(
    "SELECT COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0) AS waited "
    "FROM notifications WHERE status = 'pending'"
)
_RELEASE = text(
    "UPDATE notifications SET next_attempt_at = now() "
    "WHERE notification_id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'"
)


class PostgresLetters:
    """The stored letters: recorded once per (order, kind), taken by senders with a lease."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def find(self, order_id: str, kind: str) -> Notification | None:
        params = {"order_id": uuid.UUID(order_id), "kind": kind}
        row = (await self.conn.execute(_FIND, params)).one_or_none()
        return _public(row) if row else None

    async def add(self, notification: NewNotification) -> Notification | None:
        """The stored notification, or None when this order already has one of this kind."""
        row = (await self.conn.execute(_INSERTED, _insert_params(notification))).one_or_none()
        return _public(row) if row else None

    async def of_user(self, user_id: str, limit: int) -> list[Notification]:
        """The user's letters, newest first."""
        params = {"user_id": uuid.UUID(user_id), "limit": limit}
        return [_public(row) for row in (await self.conn.execute(_OF_USER, params)).all()]

    async def take_due(self, limit: int) -> list[Outgoing]:
        """Pending letters whose time has come, taken for `LEASE_SECONDS`: their next attempt moves
        that far ahead in the same statement, so other senders (and this one's next turn) skip them
        while they go out, and none waits on a lock held across the SMTP conversation."""
        rows = (await self.conn.execute(_TAKE_DUE, {"limit": limit, "lease": LEASE_SECONDS})).all()
        rows.sort(key=lambda r: (r.created_at, r.notification_id))
        return [Outgoing(r.notification_id, r.recipient, r.subject, r.body, r.attempts) for r in rows]

    async def mark_sent(self, notification_ids: list[str]) -> None:
        """The letters that went out, in one statement."""
        if not notification_ids:
            return
        ids = [uuid.UUID(notification_id) for notification_id in notification_ids]
        await self.conn.execute(_MARK_SENT, {"ids": ids})

    async def mark_failed(
        self, notification_id: str, error: str, status: NotificationStatus, retry_in: float
    ) -> None:
        params = {
            "id": uuid.UUID(notification_id),
            "status": status.value,
            "error": error[:1000],
            "retry_in": retry_in,
        }
        await self.conn.execute(_MARK_FAILED, params)

    async def oldest_pending_seconds(self) -> float:
        """How long the oldest letter not yet sent has waited (0 when none waits)."""
        waited = (await self.conn.execute(_OLDEST_PENDING)).scalar()
        return float(waited or 0)

    async def release(self, notification_ids: list[str]) -> None:
        """Give letters taken with a lease back at once (their sender is stopping before it sent
        them): any sender's next poll takes them, instead of waiting the lease out."""
        await self.conn.execute(_RELEASE, {"ids": notification_ids})
