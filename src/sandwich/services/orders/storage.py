"""Orders and their history in the orders database.

Every transition is one transaction: the conditional UPDATE (`WHERE version = :expected`) makes
concurrent transitions of one order serialize, the history row and the outbox event go with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.events import rfc3339
from sandwich.platform.idempotency import StoredAnswer, existing_claim, load_answer
from sandwich.platform.outbox import OUTBOX_ROW_IDS, OUTBOX_ROWS, Committed, Event, committed, outbox_params
from sandwich.platform.sql import Connection, Row
from sandwich.platform.unit_of_work import RecordedEvents
from sandwich.services.orders.domain import Delivery, Order, OrderLine, OrderStatus
from sandwich.services.orders.unit_of_work import FirstAnswer, KeyClaim

_COLUMNS = (
    "order_id::text AS order_id, user_id::text AS user_id, username, status, items, total, delivery, "
    "food_point_id, courier, payment_operation_id, idempotency_key, version, created_at, updated_at, "
    "cancel_reason AS reason, refund_pending, from_basket"
)
# The order, its first history entry and its events in one statement (one round trip). With an
# Idempotency-Key the key is claimed in the same statement, and the order is only written when the
# claim is new (ON CONFLICT waits for a concurrent claim of the same key to commit or roll back).
_ORDER_VALUES = (
    ":order_id, :user_id, :username, :status, :items, :total, :delivery, :key, :version, :created_at, "
    ":updated_at, :from_basket, :reason"
)
_ORDER_COLUMNS = (
    "order_id, user_id, username, status, items, total, delivery, idempotency_key, version, created_at, "
    "updated_at, from_basket, cancel_reason"
)
_PLACED_AND_RECORDED = (
    " history AS (INSERT INTO order_history (order_id, version, status, at) "
    "SELECT order_id, :version, :status, :updated_at FROM placed), "
    f" events AS ({OUTBOX_ROWS} WHERE EXISTS (SELECT 1 FROM placed) RETURNING id) "
    f"SELECT (SELECT count(*) FROM placed) AS written, {OUTBOX_ROW_IDS.format(cte='events')}"
)
_INSERT = text(
    f"WITH placed AS (INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({_ORDER_VALUES}) RETURNING order_id), "
    + _PLACED_AND_RECORDED
)
_INSERT_CLAIMED = text(
    "WITH claim AS (INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, status_code, response) "
    "VALUES (:scope, :key, :request_hash, :resource_id, :answer_status, :answer) ON CONFLICT DO NOTHING "
    "RETURNING 1), "
    f"placed AS (INSERT INTO orders ({_ORDER_COLUMNS}) SELECT {_ORDER_VALUES} "
    "WHERE EXISTS (SELECT 1 FROM claim) RETURNING order_id), " + _PLACED_AND_RECORDED
)
# The next version, its history entry, its events and (for the change that settles a POST /order)
# the request's stored answer, in one statement; no row when someone moved the order first.
_MOVED_AND_RECORDED = (
    "WITH moved AS (UPDATE orders SET status = :status, version = :version, updated_at = :updated_at, "
    "food_point_id = :food_point_id, courier = :courier, payment_operation_id = :payment_operation_id, "
    "cancel_reason = :cancel_reason, refund_pending = :refund_pending "
    "WHERE order_id = :order_id AND version = :expected RETURNING order_id), "
    "history AS (INSERT INTO order_history (order_id, version, status, at) "
    "SELECT order_id, :version, :status, :updated_at FROM moved), "
    f"events AS ({OUTBOX_ROWS} WHERE EXISTS (SELECT 1 FROM moved) RETURNING id) "
)
_WRITTEN = f"SELECT (SELECT count(*) FROM moved) AS written, {OUTBOX_ROW_IDS.format(cte='events')}"
_UPDATE = text(_MOVED_AND_RECORDED + _WRITTEN)
_UPDATE_ANSWERED = text(
    _MOVED_AND_RECORDED
    + ", answer AS (UPDATE idempotency_keys SET status_code = :answer_status, response = :answer, "
    "resource_id = :resource_id WHERE scope = :scope AND key = :key AND EXISTS (SELECT 1 FROM moved)) "
    + _WRITTEN
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
        reason=row.reason,
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
        "reason": order.reason,
        "created_at": rfc3339(order.created_at),
        "updated_at": rfc3339(order.updated_at),
    }
    if with_user:
        view["user_id"] = order.user_id
        view["from_basket"] = order.from_basket
    return view


def _order_params(order: Order) -> dict[str, Any]:
    return {
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
        "reason": order.reason,
    }


def _answer_params(answer: FirstAnswer | None) -> dict[str, Any]:
    """The stored answer a repeated POST /order replays: 202 when the order was only accepted (its
    payment to come by events), else 201 with the payment's outcome; the order as API.md shows it."""
    if answer is None:
        return {"answer_status": None, "answer": None}
    return {
        "answer_status": 202 if answer.accepted else 201,
        "answer": orjson.dumps(order_view(answer.order)),
    }


async def insert_order(
    conn: Connection,
    order: Order,
    events: Sequence[Event],
    claim: KeyClaim | None = None,
    answer: FirstAnswer | None = None,
) -> list[Committed] | None:
    """Store a new order with its events (the outbox rows written, for the relay); None (nothing
    written) when `claim`'s key was taken.

    `answer` is stored with the claim when the request's answer is known already (async: 202).
    """
    params = {**_order_params(order), **outbox_params(events)}
    if claim is None:
        result = await conn.execute(_INSERT, params)
    else:
        params.update(
            scope=claim.scope,
            key=claim.key,
            request_hash=claim.request_hash,
            resource_id=order.order_id,
            **_answer_params(answer),
        )
        result = await conn.execute(_INSERT_CLAIMED, params)
    return _written(result.one(), events)


async def save_transition(
    conn: Connection,
    order: Order,
    events: Sequence[Event],
    answer: FirstAnswer | None = None,
) -> list[Committed] | None:
    """Store `order` (one version after the stored one) with its events, and `answer` as the stored
    answer of the request that placed it: the outbox rows written, or None (nothing written) if
    someone else moved it first."""
    params = {
        "order_id": uuid.UUID(order.order_id),
        "status": order.status.value,
        "version": order.version,
        "expected": order.version - 1,
        "updated_at": order.updated_at,
        "food_point_id": order.food_point_id,
        "courier": order.courier,
        "payment_operation_id": order.payment_operation_id,
        "cancel_reason": order.reason,
        "refund_pending": order.refund_pending,
        **outbox_params(events),
    }
    if answer is None:
        result = await conn.execute(_UPDATE, params)
    else:
        params.update(
            scope=order.user_id,
            key=order.idempotency_key,
            resource_id=order.order_id,
            **_answer_params(answer),
        )
        result = await conn.execute(_UPDATE_ANSWERED, params)
    return _written(result.one(), events)


def _written(row: Row, events: Sequence[Event]) -> list[Committed] | None:
    return committed(row.outbox_row_ids, events) if row.written else None


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


async def count_by_status(conn: Connection) -> dict[str, int]:
    """How many orders are in each status (every status named, zero where none is)."""
    rows = (await conn.execute(text("SELECT status, count(*) AS n FROM orders GROUP BY status"))).all()
    counted = {str(row.status): int(row.n) for row in rows}
    return {status.value: counted.get(status.value, 0) for status in OrderStatus}


class PostgresOrders:
    """The orders repository on one connection: each change is one statement that carries the
    events recorded so far in the unit of work (taken from `events`, reported back as written)."""

    def __init__(self, conn: Connection, events: RecordedEvents):
        self.conn = conn
        self.events = events

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        return await load_order(self.conn, order_id, for_update=for_update)

    async def add(
        self, order: Order, claim: KeyClaim | None = None, answer: FirstAnswer | None = None
    ) -> bool:
        events = self.events.take()
        rows = await insert_order(self.conn, order, events, claim, answer)
        if rows is None:
            return False
        self.events.written(events, rows)
        return True

    async def save(self, order: Order, answer: FirstAnswer | None = None) -> bool:
        events = self.events.take()
        rows = await save_transition(self.conn, order, events, answer)
        if rows is None:
            return False
        self.events.written(events, rows)
        return True

    async def history(self, order_id: str) -> list[dict[str, Any]]:
        return await history(self.conn, order_id)

    async def awaiting_payment(self, older_than: datetime, limit: int) -> list[str]:
        return await orders_awaiting_payment(self.conn, older_than, limit)

    async def awaiting_refund(self, limit: int) -> list[str]:
        return await orders_awaiting_refund(self.conn, limit)

    async def set_refund_pending(self, order_id: str, pending: bool) -> None:
        await set_refund_pending(self.conn, order_id, pending)

    async def count_by_status(self) -> dict[str, int]:
        return await count_by_status(self.conn)


class PostgresRequestKeys:
    def __init__(self, conn: Connection):
        self.conn = conn

    async def existing(self, scope: str, key: str, request_hash: str) -> StoredAnswer:
        return await existing_claim(self.conn, scope, key, request_hash)

    async def answer(self, scope: str, key: str) -> StoredAnswer | None:
        return await load_answer(self.conn, scope, key)
