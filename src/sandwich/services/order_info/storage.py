"""The order_views and order_history tables of the order_info database.

Every change of an order's view is announced with NOTIFY on `STATUS_CHANNEL` once the change has
committed (`Connection.notify`: sent outside the transaction, see platform/pg_notify.py), so
listeners (the live event streams of every order_info instance) hear of it right after the commit,
and never of a change that was rolled back.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.inbox import CLAIMED, Effect
from sandwich.platform.pg_notify import Notification
from sandwich.platform.sql import Connection
from sandwich.services.order_info.domain import HistoryEntry, OrderUpdate

STATUS_CHANNEL = "order_info_status"
"""The NOTIFY channel of view changes; the payload is `<order_id>:<version>:<status>`."""


def _apply_update_ctes(guard: str) -> str:
    """One round trip for one event: the history entry, the view (only when the event is newer than
    what it shows: domain.supersedes, evaluated under the row lock the upsert takes, so two events of
    one order racing each other, or the first two racing to insert the row, keep the newest) and,
    when the view changed, its new version and status (`CHANGE`, for the NOTIFY). `guard` is a WHERE
    clause on the writes (the live consumer's inbox claim), or empty."""
    return (
        "history AS ("
        " INSERT INTO order_history (order_id, version, status, at, trace_id) "
        f" SELECT :order_id, :history_version, :history_status, :at, :trace_id {guard} ON CONFLICT DO NOTHING"
        "), changed AS ("
        " INSERT INTO order_views (order_id, user_id, username, status, version, snapshot, created_at, updated_at) "
        f" SELECT :order_id, :user_id, :username, :status, :version, CAST(:snapshot AS jsonb), :created_at, "
        f" :updated_at {guard} "
        " ON CONFLICT (order_id) DO UPDATE SET user_id = EXCLUDED.user_id, username = EXCLUDED.username, "
        " status = EXCLUDED.status, version = EXCLUDED.version, snapshot = EXCLUDED.snapshot, "
        " created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at "
        " WHERE order_views.version < EXCLUDED.version "
        " RETURNING version, status"
        ")"
    )


CHANGE = "(SELECT CAST(version AS text) || ':' || status FROM changed) AS change"
"""`<version>:<status>` of the view after the change, NULL when the view did not change."""
_APPLY_UPDATE = text(f"WITH {_apply_update_ctes('')} SELECT {CHANGE}")
_CURRENT_STATUS = text(
    "SELECT v.user_id::text AS user_id, v.version, v.status, COALESCE(h.at, v.updated_at) AS at "
    "FROM order_views v LEFT JOIN order_history h "
    "ON h.order_id = v.order_id AND h.version = v.version WHERE v.order_id = :id"
)
_HISTORY_AFTER = text(
    "SELECT version, status, at FROM order_history WHERE order_id = :id AND version > :version "
    "ORDER BY version"
)
_VIEW = text("SELECT user_id::text AS user_id, snapshot FROM order_views WHERE order_id = :id")
_HISTORY = text(
    "SELECT version, status, at, trace_id FROM order_history WHERE order_id = :id ORDER BY version"
)
_OF_USER = text(
    "SELECT snapshot FROM order_views WHERE user_id = :user_id "
    "ORDER BY created_at DESC, order_id DESC LIMIT :limit"
)


def _status_notification(order_id: str, change: str | None) -> list[Notification]:
    """The NOTIFY of a view change: `<order_id>:<version>:<status>` on STATUS_CHANNEL."""
    return [] if change is None else [(STATUS_CHANNEL, f"{uuid.UUID(order_id)}:{change}")]


def _json(raw: Any) -> Any:
    # SQLAlchemy's asyncpg dialect decodes jsonb; a plain string would mean a driver without that codec.
    return orjson.loads(raw) if isinstance(raw, str | bytes) else raw


def _update_params(update: OrderUpdate) -> dict[str, Any]:
    entry = update.history_entry()
    view = update.view()
    return {
        "order_id": uuid.UUID(update.order_id),
        "history_version": entry.version,
        "history_status": entry.status,
        "at": entry.at,
        "trace_id": entry.trace_id or None,
        "user_id": uuid.UUID(view.user_id),
        "username": view.username,
        "status": view.status,
        "version": view.version,
        "snapshot": orjson.dumps(dict(view.snapshot)).decode(),
        "created_at": view.created_at,
        "updated_at": view.updated_at,
    }


def update_effect(update: OrderUpdate) -> Effect:
    """Apply one event as the live consumer's Effect: the same writes, only if the inbox claim is new."""
    return Effect(
        _apply_update_ctes(f"WHERE {CLAIMED}"),
        _update_params(update),
        result=CHANGE,
        notifications=lambda row: _status_notification(update.order_id, row.change),
    )


class PostgresOrderViews:
    """The order_views and order_history tables on one connection (the unit of work's)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def apply(self, update: OrderUpdate) -> bool:
        """Apply one event (the live consumer's one statement is `update_effect`); True when the view
        changed, and then NOTIFY it once committed."""
        change = (await self.conn.execute(_APPLY_UPDATE, _update_params(update))).scalar_one()
        for channel, payload in _status_notification(update.order_id, change):
            self.conn.notify(channel, payload)
        return change is not None

    async def current_status(self, order_id: uuid.UUID) -> tuple[str, HistoryEntry] | None:
        """(owner user id, the history entry of the version the view shows), or None when unseen."""
        row = (await self.conn.execute(_CURRENT_STATUS, {"id": order_id})).one_or_none()
        return (row.user_id, HistoryEntry(row.version, row.status, row.at)) if row else None

    async def history_after(self, order_id: uuid.UUID, version: int) -> list[HistoryEntry]:
        """The history entries of versions above `version`, oldest first."""
        rows = (await self.conn.execute(_HISTORY_AFTER, {"id": order_id, "version": version})).all()
        return [HistoryEntry(row.version, row.status, row.at) for row in rows]

    async def view(self, order_id: uuid.UUID) -> tuple[str, dict[str, Any]] | None:
        """(owner user id, snapshot) of one order, or None when the read model has not seen it."""
        row = (await self.conn.execute(_VIEW, {"id": order_id})).one_or_none()
        return (row.user_id, _json(row.snapshot)) if row else None

    async def history(self, order_id: uuid.UUID) -> list[HistoryEntry]:
        """The order's history entries, oldest first, each with its trace id where known."""
        rows = (await self.conn.execute(_HISTORY, {"id": order_id})).all()
        return [HistoryEntry(row.version, row.status, row.at, row.trace_id or "") for row in rows]

    async def of_user(self, user_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
        """Snapshots of a user's orders, newest first."""
        rows = (await self.conn.execute(_OF_USER, {"user_id": user_id, "limit": limit})).all()
        return [_json(row.snapshot) for row in rows]
