"""Accounts and the ledger of the billing database.

A balance change and its ledger row are one statement pair in one transaction; the conditional
UPDATE (`balance + delta >= 0`) is what keeps concurrent payments from overdrawing an account.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from sandwich.platform.events import rfc3339
from sandwich.platform.sql import Connection
from sandwich.services.billing.domain import CURRENCY, OperationKind

_OPEN = text(
    "INSERT INTO accounts (user_id, username, currency) VALUES (:user_id, :username, :currency) "
    "ON CONFLICT (user_id) DO NOTHING"
)
_MOVE = text(
    "UPDATE accounts SET balance = balance + :delta WHERE user_id = :user_id AND balance + :delta >= 0 "
    "RETURNING balance"
)
_BALANCE = text("SELECT balance, currency FROM accounts WHERE user_id = :user_id")
_RECORD = text(
    "INSERT INTO operations (operation_id, user_id, kind, amount, balance_after, order_id, idempotency_key) "
    "VALUES (:operation_id, :user_id, :kind, :amount, :balance_after, :order_id, :key) RETURNING created_at"
)
_OPERATIONS = text(
    "SELECT operation_id::text AS operation_id, kind, amount, balance_after, order_id::text AS order_id, created_at "
    "FROM operations WHERE user_id = :user_id ORDER BY created_at DESC, operation_id LIMIT :limit"
)


async def open_account(conn: Connection, user_id: str, username: str | None) -> bool:
    result = await conn.execute(
        _OPEN, {"user_id": uuid.UUID(user_id), "username": username, "currency": CURRENCY}
    )
    return bool(result.rowcount)


async def account(conn: Connection, user_id: str) -> tuple[int, str] | None:
    row = (await conn.execute(_BALANCE, {"user_id": uuid.UUID(user_id)})).one_or_none()
    return (int(row.balance), row.currency) if row else None


async def move_balance(conn: Connection, user_id: str, delta: int) -> int | None:
    """The new balance, or None when the move would overdraw (or the account does not exist)."""
    row = (await conn.execute(_MOVE, {"user_id": uuid.UUID(user_id), "delta": delta})).one_or_none()
    return int(row.balance) if row else None


async def record_operation(
    conn: Connection,
    user_id: str,
    kind: OperationKind,
    amount: int,
    balance_after: int,
    order_id: str | None,
    key: str | None,
) -> dict[str, Any]:
    operation_id = uuid.uuid4()
    created_at = (
        await conn.execute(
            _RECORD,
            {
                "operation_id": operation_id,
                "user_id": uuid.UUID(user_id),
                "kind": kind.value,
                "amount": amount,
                "balance_after": balance_after,
                "order_id": uuid.UUID(order_id) if order_id else None,
                "key": key,
            },
        )
    ).scalar_one()
    return operation_view(str(operation_id), kind.value, amount, balance_after, order_id, created_at)


def operation_view(
    operation_id: str, kind: str, amount: int, balance_after: int, order_id: str | None, created_at: Any
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "operation_id": operation_id,
        "kind": kind,
        "amount": int(amount),
        "balance_after": int(balance_after),
        "created_at": rfc3339(created_at),
    }
    if order_id:
        view["order_id"] = order_id
    return view


async def operations(conn: Connection, user_id: str, limit: int) -> list[dict[str, Any]]:
    rows = (await conn.execute(_OPERATIONS, {"user_id": uuid.UUID(user_id), "limit": limit})).all()
    return [
        operation_view(r.operation_id, r.kind, r.amount, r.balance_after, r.order_id, r.created_at)
        for r in rows
    ]


async def lock_account(conn: Connection, user_id: str) -> bool:
    """Serialize money moves of one account for the rest of the transaction."""
    row = await conn.execute(
        text("SELECT 1 FROM accounts WHERE user_id = :user_id FOR UPDATE"), {"user_id": uuid.UUID(user_id)}
    )
    return row.first() is not None


async def net_paid_for_order(conn: Connection, user_id: str, order_id: str) -> int:
    """Payments minus refunds recorded for one order of one user."""
    value = (
        await conn.execute(
            text(
                "SELECT COALESCE(SUM(CASE kind WHEN 'payment' THEN amount WHEN 'refund' THEN -amount ELSE 0 END), 0) "
                "FROM operations WHERE user_id = :user_id AND order_id = :order_id"
            ),
            {"user_id": uuid.UUID(user_id), "order_id": uuid.UUID(order_id)},
        )
    ).scalar_one()
    return int(value)
