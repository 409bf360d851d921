"""Orders and their history in the orders database.

Every transition is one transaction: the conditional UPDATE (`WHERE version = :expected`) makes
concurrent transitions of one order serialize, the history row and the outbox event go with it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.events import rfc3339
from sandwich.platform.sql import Connection
from sandwich.services.orders.domain import Delivery, Order, OrderLine, OrderStatus

_COLUMNS = (
    "order_id::text AS order_id, user_id::text AS user_id, username, status, items, total, delivery, "
    "food_point_id, courier, payment_operation_id, idempotency_key, version, created_at, updated_at, "
    "cancel_reason, refund_pending, from_basket"
)
# The order and its first history entry in one statement (one round trip).
_INSERT = text(
    "WITH history AS (INSERT INTO order_history (order_id, version, status, at) "
    "VALUES (:order_id, :version, :status, :updated_at)) "
    "INSERT INTO orders (order_id, user_id, username, status, items, total, delivery, idempotency_key, "
    "version, created_at, updated_at, from_basket) VALUES (:order_id, :user_id, :username, :status, :items, "
    ":total, :delivery, :key, :version, :created_at, :updated_at, :from_basket)"
)
# The next version and its history entry in one statement; no row when someone moved it first.
_UPDATE = text(
    "WITH moved AS (UPDATE orders SET status = :status, version = :version, updated_at = :updated_at, "
    "food_point_id = :food_point_id, courier = :courier, payment_operation_id = :payment_operation_id, "
    "cancel_reason = :cancel_reason, refund_pending = :refund_pending "
    "WHERE order_id = :order_id AND version = :expected RETURNING order_id) "
    "INSERT INTO order_history (order_id, version, status, at) "
    "SELECT order_id, :version, :status, :updated_at FROM moved"
)


def _row_to_order(row: Any) -> Order:
    items = row.items if isinstance(row.items, list) else orjson.loads(row.items)
    delivery = row.delivery if isinstance(row.delivery, dict) else orjson.loads(row.delivery)
    return Order(
        order_id=row.order_id,
        user_id=row.user_id,
        username=row.username,
        status=OrderStatus(row.status),
        items=tuple(OrderLine(**item) for item in items),
        total=int(row.total),
        delivery=Delivery(**delivery),
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        food_point_id=row.food_point_id,
        courier=row.courier,
        payment_operation_id=row.payment_operation_id,
        idempotency_key=row.idempotency_key,
        cancel_reason=row.cancel_reason,
        refund_pending=row.refund_pending,
        from_basket=row.from_basket,
    )


def order_view(order: Order, *, with_user: bool = False) -> dict[str, Any]:
    """The order as API.md shows it (and, for events, with the owner's user id)."""
    view: dict[str, Any] = {
        "order_id": order.order_id,
        "username": order.username,
        "status": order.status.value,
        "items": [line.as_dict() for line in order.items],
        "total": order.total,
        "delivery": order.delivery.as_dict(),
        "food_point_id": order.food_point_id,
        "courier": order.courier,
        "payment_operation_id": order.payment_operation_id,
        "created_at": rfc3339(order.created_at),
        "updated_at": rfc3339(order.updated_at),
    }
    if with_user:
        view["user_id"] = order.user_id
        view["from_basket"] = order.from_basket
    return view


async def insert_order(conn: Connection, order: Order) -> None:
    await conn.execute(
        _INSERT,
        {
            "order_id": uuid.UUID(order.order_id),
            "user_id": uuid.UUID(order.user_id),
            "username": order.username,
            "status": order.status.value,
            "items": orjson.dumps([line.as_dict() for line in order.items]).decode(),
            "total": order.total,
            "delivery": orjson.dumps(order.delivery.as_dict()).decode(),
            "key": order.idempotency_key,
            "version": order.version,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
            "from_basket": order.from_basket,
        },
    )


async def save_transition(conn: Connection, order: Order) -> bool:
    """Store `order` (one version after the stored one); False if someone else moved it first."""
    result = await conn.execute(
        _UPDATE,
        {
            "order_id": uuid.UUID(order.order_id),
            "status": order.status.value,
            "version": order.version,
            "expected": order.version - 1,
            "updated_at": order.updated_at,
            "food_point_id": order.food_point_id,
            "courier": order.courier,
            "payment_operation_id": order.payment_operation_id,
            "cancel_reason": order.cancel_reason,
            "refund_pending": order.refund_pending,
        },
    )
    return bool(result.rowcount)


async def load_order(conn: Connection, order_id: str, *, for_update: bool = False) -> Order | None:
    try:
        key = uuid.UUID(order_id)
    except ValueError:
        return None
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await conn.execute(text(f"SELECT {_COLUMNS} FROM orders WHERE order_id = :id{lock}"), {"id": key})
    ).one_or_none()
    return _row_to_order(row) if row else None


async def history(conn: Connection, order_id: str) -> list[dict[str, Any]]:
    rows = (
        await conn.execute(
            text("SELECT status, at FROM order_history WHERE order_id = :id ORDER BY version"),
            {"id": uuid.UUID(order_id)},
        )
    ).all()
    return [{"status": row.status, "at": rfc3339(row.at)} for row in rows]


async def orders_awaiting_payment(conn: Connection, older_than: datetime, limit: int) -> list[str]:
    rows = (
        await conn.execute(
            text(
                "SELECT order_id::text AS order_id FROM orders WHERE status = 'created' AND created_at < :t "
                "ORDER BY created_at LIMIT :limit"
            ),
            {"t": older_than, "limit": limit},
        )
    ).all()
    return [row.order_id for row in rows]


async def orders_awaiting_refund(conn: Connection, limit: int) -> list[str]:
    rows = (
        await conn.execute(
            text(
                "SELECT order_id::text AS order_id FROM orders WHERE refund_pending ORDER BY updated_at LIMIT :limit"
            ),
            {"limit": limit},
        )
    ).all()
    return [row.order_id for row in rows]


async def set_refund_pending(conn: Connection, order_id: str, pending: bool) -> None:
    await conn.execute(
        text("UPDATE orders SET refund_pending = :pending WHERE order_id = :id"),
        {"id": uuid.UUID(order_id), "pending": pending},
    )
