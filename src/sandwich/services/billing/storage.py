"""Accounts and the ledger of the billing database.

A balance change and its ledger row are one statement pair in one transaction; the conditional
UPDATE (`balance + delta >= 0`) is what keeps concurrent payments from overdrawing an account.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.events import rfc3339
from sandwich.platform.sql import Connection, Row
from sandwich.services.billing.domain import CURRENCY, OperationKind, signed_amount

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
# One money operation in one statement: the account row is locked, the verdict taken on its balance,
# the Idempotency-Key claimed with the answer (ON CONFLICT: a repeated request finds the first one's
# claim and changes nothing), and only then the balance moved and the ledger row appended.
_DECIDED = (
    "WITH account AS (SELECT balance FROM accounts WHERE user_id = :user_id FOR UPDATE), "
    # The time is taken once the lock is held, so the ledger's order is the order of the moves.
    "decided AS (SELECT COALESCE(a.balance + :delta >= 0, false) AS ok, a.balance + :delta AS balance_after, "
    "clock_timestamp() AS at FROM (SELECT 1) AS one LEFT JOIN account AS a ON true), "
)
_ANSWER = (
    "CASE WHEN ok THEN 201 ELSE 406 END AS status_code, convert_to(CAST(CASE WHEN ok THEN jsonb_set(jsonb_set("
    "CAST(:done AS jsonb), '{balance_after}', to_jsonb(balance_after)), '{created_at}', "
    "to_jsonb(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))) "
    "ELSE CAST(:refused AS jsonb) END AS text), 'UTF8') AS response FROM decided"
)
_MOVED_AND_RECORDED = (
    "moved AS (UPDATE accounts SET balance = balance + :delta WHERE user_id = :user_id "
    "AND EXISTS (SELECT 1 FROM answer WHERE status_code = 201) RETURNING balance), "
    "recorded AS (INSERT INTO operations (operation_id, user_id, kind, amount, balance_after, order_id, "
    "idempotency_key, created_at) SELECT :operation_id, :user_id, :kind, :amount, m.balance, :order_id, :key, "
    "d.at FROM moved AS m, decided AS d) "
    "SELECT status_code, response FROM answer"
)
_OPERATE_CLAIMED = text(
    _DECIDED
    + "answer AS (INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, status_code, response) "
    "SELECT :user_id_text, :key, :request_hash, CASE WHEN ok THEN :operation_ref END, "
    + _ANSWER
    + " ON CONFLICT DO NOTHING RETURNING status_code, response), "
    + _MOVED_AND_RECORDED
)
_OPERATE = text(_DECIDED + "answer AS (SELECT " + _ANSWER + "), " + _MOVED_AND_RECORDED)
_OPERATIONS = text(
    "SELECT operation_id::text AS operation_id, kind, amount, balance_after, order_id::text AS order_id, created_at "
    "FROM operations WHERE user_id = :user_id ORDER BY created_at DESC, operation_id LIMIT :limit"
)


async def open_account(conn: Connection, user_id: str, username: str | None) -> bool:
    result = await conn.execute(
        _OPEN, {"user_id": uuid.UUID(user_id), "username": username, "currency": CURRENCY}
    )
    return bool(result.rowcount)


async def operate(
    conn: Connection,
    user_id: str,
    kind: OperationKind,
    amount: int,
    order_id: str | None,
    key: str | None,
    request_hash: str,
    refused: dict[str, Any],
) -> tuple[int, dict[str, Any]] | None:
    """Apply one operation (201 and the operation, or 406 and `refused`); None when `key` was taken
    by an earlier request, which then changed nothing here."""
    operation_id = uuid.uuid4()
    template = operation_view(str(operation_id), kind.value, amount, 0, order_id, datetime.now(UTC))
    params = {
        "user_id": uuid.UUID(user_id),
        "delta": signed_amount(kind, amount),
        "done": orjson.dumps(template).decode(),
        "refused": orjson.dumps(refused).decode(),
        "operation_id": operation_id,
        "kind": kind.value,
        "amount": amount,
        "order_id": uuid.UUID(order_id) if order_id else None,
        "key": key,
    }
    if key is None:
        row: Row | None = (await conn.execute(_OPERATE, params)).one()
    else:
        params.update(user_id_text=user_id, request_hash=request_hash, operation_ref=str(operation_id))
        row = (await conn.execute(_OPERATE_CLAIMED, params)).one_or_none()
    if row is None:
        return None  # the key's first request did the work
    return int(row.status_code), orjson.loads(row.response)


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
