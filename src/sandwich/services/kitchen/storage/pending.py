"""Paid orders waiting for a food point (table pending_orders): which are worth trying now, the lock
one transaction works on an order under, the notes of attempts, and the timed-out ones' cancellation."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from sandwich.platform.inbox import CLAIMED, Effect
from sandwich.platform.sql import Connection
from sandwich.services.kitchen.domain import PendingOrder
from sandwich.services.kitchen.storage.rows import NOTIFY_CHANNEL, dumps, json_value

_PENDING_COLUMNS = (
    "order_id::text AS order_id, user_id::text AS user_id, username, items, delivery, lat, lon, paid_at"
)

# Never tried: through an index of its own (migration 0003), on every pass.
_UNTRIED_PENDING = text(
    f"SELECT {_PENDING_COLUMNS} FROM pending_orders WHERE tried_at_supply IS NULL AND cancel_requested_at IS NULL "
    "ORDER BY paid_at, order_id LIMIT :limit"
)
# The same, with the supply version read in the same statement (what a pass starts with).
_UNTRIED_WITH_SUPPLY = text(
    f"SELECT s.version AS supply, p.* FROM supply AS s LEFT JOIN LATERAL (SELECT {_PENDING_COLUMNS} "
    "FROM pending_orders WHERE tried_at_supply IS NULL AND cancel_requested_at IS NULL "
    "ORDER BY paid_at, order_id LIMIT :limit) AS p ON true WHERE s.id = 1"
)
# Past the assignment timeout: asked on the assigner's timer only. A pass runs on every paid order,
# and while the table's statistics lag behind a fast-growing queue PostgreSQL may answer this by
# reading every waiting order (seen: 750 rows read per order placed).
_EXPIRED_PENDING = text(
    f"SELECT {_PENDING_COLUMNS} FROM pending_orders WHERE cancel_requested_at IS NULL "
    "AND paid_at < now() - make_interval(secs => :timeout) ORDER BY paid_at, order_id LIMIT :limit"
)
# Tried before the last supply change. No index makes "oldest first among the stale" cheap while
# none is stale (PostgreSQL walks the waiting orders by age looking for one), so the assigner asks
# this only when the supply changed since it last found them all, and on its safety-net timer.
_STALE_PENDING = text(
    f"SELECT {_PENDING_COLUMNS} FROM pending_orders WHERE cancel_requested_at IS NULL "
    "AND tried_at_supply < :supply ORDER BY paid_at, order_id LIMIT :limit"
)


def _pending(row: Any) -> PendingOrder:
    return PendingOrder(
        order_id=row.order_id,
        user_id=row.user_id,
        username=row.username,
        items=list(json_value(row.items)),
        delivery=dict(json_value(row.delivery)),
        lat=float(row.lat),
        lon=float(row.lon),
        paid_at=row.paid_at,
    )


def _add_pending_sql(guard: str) -> str:
    """Remember a paid order until a food point takes it; once per order, never after its assignment."""
    return (
        "INSERT INTO pending_orders (order_id, user_id, username, items, delivery, lat, lon, paid_at) "
        "SELECT :order_id, :user_id, :username, CAST(:items AS jsonb), CAST(:delivery AS jsonb), "
        ":lat, :lon, :paid_at "
        f"WHERE NOT EXISTS (SELECT 1 FROM assignments WHERE order_id = :order_id){guard} "
        "ON CONFLICT (order_id) DO NOTHING"
    )


def _pending_params(order: PendingOrder) -> dict[str, Any]:
    return {
        "order_id": uuid.UUID(order.order_id),
        "user_id": uuid.UUID(order.user_id),
        "username": order.username,
        "items": dumps(order.items),
        "delivery": dumps(order.delivery),
        "lat": order.lat,
        "lon": order.lon,
        "paid_at": order.paid_at,
    }


def add_pending_effect(order: PendingOrder) -> Effect:
    """PostgresPendingOrders.add as the consumer's Effect (one statement with its inbox claim), waking
    the assigners when it added."""
    return Effect(
        f"added AS ({_add_pending_sql(f' AND {CLAIMED}')} RETURNING 1)",
        _pending_params(order),
        result="(SELECT count(*) FROM added) AS added",
        notifications=lambda row: [(NOTIFY_CHANNEL, "")] if row.added else [],
    )


class PostgresPendingOrders:
    """The waiting orders on one connection."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def add(self, order: PendingOrder) -> bool:
        """Remember a paid order until a food point takes it; once per order, never after its assignment."""
        result = await self.conn.execute(text(_add_pending_sql("")), _pending_params(order))
        return bool(result.rowcount)

    async def untried(self, limit: int = 500) -> tuple[int, list[Any]]:
        """(supply version, the rows of the orders never tried, oldest first), in one statement."""
        rows = (await self.conn.execute(_UNTRIED_WITH_SUPPLY, {"limit": limit})).all()
        return int(rows[0].supply), [row for row in rows if row.order_id is not None]

    async def worth_trying(
        self,
        limit: int = 500,
        timeout_seconds: float = 600.0,
        *,
        stale_before: int | None = None,
        with_expired: bool = True,
        untried: list[Any] | None = None,
    ) -> list[PendingOrder]:
        """Orders worth trying now, oldest first: never tried, with `with_expired` those past the
        assignment timeout (those being cancelled are not waiting), and with `stale_before` also those
        tried at an older supply version; `untried`: the never-tried rows, read already (`untried`).

        Orders that already failed at the current supply cost nothing however many of them wait.
        """
        asked: list[tuple[Any, dict[str, Any]]] = (
            [] if untried is not None else [(_UNTRIED_PENDING, {"limit": limit})]
        )
        if with_expired:
            asked.append((_EXPIRED_PENDING, {"limit": limit, "timeout": float(timeout_seconds)}))
        if stale_before is not None:
            asked.append((_STALE_PENDING, {"limit": limit, "supply": stale_before}))
        found: dict[Any, Any] = {row.order_id: row for row in untried or ()}
        for statement, params in asked:
            for row in (await self.conn.execute(statement, params)).all():
                found.setdefault(row.order_id, row)
        rows = sorted(found.values(), key=lambda row: (row.paid_at, row.order_id))
        return [_pending(row) for row in rows[:limit]]

    async def lock(self, order_id: str, timeout_seconds: float) -> tuple[PendingOrder, bool] | None:
        """Lock one waiting order for this transaction: (order, waited past the timeout), or None when it
        is gone, being cancelled, or another transaction works on it right now."""
        row = (
            await self.conn.execute(
                text(
                    f"SELECT {_PENDING_COLUMNS}, paid_at < now() - make_interval(secs => :timeout) AS expired "
                    "FROM pending_orders WHERE order_id = :id AND cancel_requested_at IS NULL "
                    "FOR UPDATE SKIP LOCKED"
                ),
                {"id": uuid.UUID(order_id), "timeout": float(timeout_seconds)},
            )
        ).one_or_none()
        return (_pending(row), bool(row.expired)) if row else None

    async def note_attempt(self, order_id: str, tried_at_supply: int | None = None) -> None:
        await self.note_attempts([order_id], tried_at_supply)

    async def note_attempts(self, order_ids: list[str], tried_at_supply: int | None = None) -> None:
        """The orders were tried (at supply version `tried_at_supply`, if given), in one statement."""
        await self.conn.execute(
            text(
                "UPDATE pending_orders SET attempts = attempts + 1, last_attempt_at = now(), "
                "tried_at_supply = COALESCE(:supply, tried_at_supply) WHERE order_id = ANY(:ids)"
            ),
            {"ids": [uuid.UUID(order_id) for order_id in order_ids], "supply": tried_at_supply},
        )

    async def request_cancel(self, order_id: str) -> None:
        await self.conn.execute(
            text("UPDATE pending_orders SET cancel_requested_at = now() WHERE order_id = :id"),
            {"id": uuid.UUID(order_id)},
        )

    async def cancellations_due(self, older_than_seconds: float, limit: int = 100) -> list[str]:
        """Timed-out orders whose cancellation orders has not confirmed, last tried a while ago."""
        rows = (
            await self.conn.execute(
                text(
                    "SELECT order_id::text AS order_id FROM pending_orders WHERE cancel_requested_at IS NOT NULL "
                    "AND GREATEST(last_attempt_at, cancel_requested_at) < now() - make_interval(secs => :age) "
                    "ORDER BY cancel_requested_at LIMIT :limit"
                ),
                {"age": float(older_than_seconds), "limit": limit},
            )
        ).all()
        return [row.order_id for row in rows]

    async def drop(self, order_id: str) -> bool:
        result = await self.conn.execute(
            text("DELETE FROM pending_orders WHERE order_id = :id"), {"id": uuid.UUID(order_id)}
        )
        return bool(result.rowcount)
