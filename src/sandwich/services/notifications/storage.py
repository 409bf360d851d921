"""The notifications table of the notifications database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from sandwich.platform.inbox import CLAIMED, Effect
from sandwich.platform.sql import Connection, Row
from sandwich.services.notifications.domain import NotificationStatus

_PUBLIC = (
    "notification_id::text AS notification_id, order_id::text AS order_id, kind, channel, subject, body, "
    "status, created_at"
)


@dataclass(frozen=True)
class NewNotification:
    notification_id: str
    user_id: str
    order_id: str | None
    kind: str
    channel: str
    recipient: str | None
    subject: str
    body: str
    status: NotificationStatus
    last_error: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """A pending letter picked for sending."""

    notification_id: str
    recipient: str
    subject: str
    body: str
    attempts: int


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _public(row: Any) -> dict[str, Any]:
    return {
        "notification_id": row.notification_id,
        "order_id": row.order_id,
        "kind": row.kind,
        "channel": row.channel,
        "subject": row.subject,
        "body": row.body,
        "status": row.status,
        "created_at": _rfc3339(row.created_at),
    }


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


async def find(conn: Connection, order_id: str, kind: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            text(f"SELECT {_PUBLIC} FROM notifications WHERE order_id = :order_id AND kind = :kind"),
            {"order_id": uuid.UUID(order_id), "kind": kind},
        )
    ).one_or_none()
    return _public(row) if row else None


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


async def insert(conn: Connection, notification: NewNotification) -> dict[str, Any] | None:
    """The stored notification, or None when this order already has one of this kind."""
    statement = _INSERT.format(values=_INSERT_VALUES) + f" RETURNING {_PUBLIC}"
    row = (await conn.execute(text(statement), _insert_params(notification))).one_or_none()
    return _public(row) if row else None


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


async def of_user(conn: Connection, user_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    rows = (
        await conn.execute(
            text(
                f"SELECT {_PUBLIC} FROM notifications WHERE user_id = :user_id "
                "ORDER BY created_at DESC, notification_id DESC LIMIT :limit"
            ),
            {"user_id": user_id, "limit": limit},
        )
    ).all()
    return [_public(row) for row in rows]


LEASE_SECONDS = 60.0
"""How long a picked letter is left to its sender before another sender may take it (a sender that
died between sending and recording it)."""


async def take_due(conn: Connection, limit: int) -> list[Outgoing]:
    """Pending letters whose time has come, taken for `LEASE_SECONDS`: their next attempt moves that
    far ahead in the same statement, so other senders (and this one's next turn) skip them while they
    go out, and none waits on a lock held across the SMTP conversation."""
    rows = (
        await conn.execute(
            text(
                "UPDATE notifications SET next_attempt_at = clock_timestamp() + make_interval(secs => :lease) "
                "WHERE notification_id IN (SELECT notification_id FROM notifications "
                "WHERE status = 'pending' AND next_attempt_at <= now() AND recipient IS NOT NULL "
                "ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
                "RETURNING notification_id::text AS notification_id, recipient, subject, body, attempts, "
                "created_at"
            ),
            {"limit": limit, "lease": LEASE_SECONDS},
        )
    ).all()
    rows.sort(key=lambda r: (r.created_at, r.notification_id))
    return [Outgoing(r.notification_id, r.recipient, r.subject, r.body, r.attempts) for r in rows]


async def mark_sent(conn: Connection, notification_ids: list[str]) -> None:
    """The letters that went out, in one statement."""
    if not notification_ids:
        return
    await conn.execute(
        text(
            "UPDATE notifications SET status = 'sent', attempts = attempts + 1, last_error = NULL, "
            "sent_at = clock_timestamp() WHERE notification_id = ANY(:ids)"
        ),
        {"ids": [uuid.UUID(notification_id) for notification_id in notification_ids]},
    )


async def mark_failed(
    conn: Connection, notification_id: str, error: str, status: NotificationStatus, retry_in: float
) -> None:
    await conn.execute(
        text(
            "UPDATE notifications SET status = :status, attempts = attempts + 1, last_error = :error, "
            "next_attempt_at = clock_timestamp() + make_interval(secs => :retry_in) "
            "WHERE notification_id = :id"
        ),
        {
            "id": uuid.UUID(notification_id),
            "status": status.value,
            "error": error[:1000],
            "retry_in": retry_in,
        },
    )


async def oldest_pending_seconds(conn: Connection) -> float:
    """How long the oldest letter not yet sent has waited (0 when none waits)."""
    waited = (
        await conn.execute(
            text(
                "SELECT COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0) AS waited "
                "FROM notifications WHERE status = 'pending'"
            )
        )
    ).scalar()
    return float(waited or 0)


async def release(conn: Connection, notification_ids: list[str]) -> None:
    """Give letters taken with a lease back at once (their sender is stopping before it sent them):
    any sender's next poll takes them, instead of waiting the lease out."""
    await conn.execute(
        text(
            "UPDATE notifications SET next_attempt_at = now() "
            "WHERE notification_id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'"
        ),
        {"ids": notification_ids},
    )
