"""Accounts and the ledger of the billing database: the Postgres repositories of its unit of work.

A balance change and its ledger row are one statement pair in one transaction; the conditional
UPDATE (`balance + delta >= 0`) is what keeps concurrent payments from overdrawing an account. A
money operation with a key is ONE statement that also claims the key and stores the answer a repeat
replays (answers.py), so a payment needs no transaction around it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from sqlalchemy import text

from sandwich.platform.events import rfc3339
from sandwich.platform.idempotency import IdempotencyKeyReused, existing_claim
from sandwich.platform.sql import Connection, Row
from sandwich.services.billing.answers import REFUSED_BODY, operation_body, outcome_of
from sandwich.services.billing.domain import (
    CURRENCY,
    Account,
    KeyReused,
    Operation,
    OperationKind,
    Outcome,
    signed_amount,
)

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
# The answers' statuses (201, 406) are answers.OPERATED and answers.REFUSED.
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

_LOCK = text("SELECT 1 FROM accounts WHERE user_id = :user_id FOR UPDATE")
_NET_PAID = text(
    "SELECT COALESCE(SUM(CASE kind WHEN 'payment' THEN amount WHEN 'refund' THEN -amount ELSE 0 END), 0) "
    "FROM operations WHERE user_id = :user_id AND order_id = :order_id"
)


class PostgresAccounts:
    """The accounts table: balances, opened on first use."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def open(self, user_id: str, username: str | None) -> bool:
        """Open the account unless it is there (True when it was opened now)."""
        result = await self.conn.execute(
            _OPEN, {"user_id": uuid.UUID(user_id), "username": username, "currency": CURRENCY}
        )
        return bool(result.rowcount)

    async def get(self, user_id: str) -> Account | None:
        row = (await self.conn.execute(_BALANCE, {"user_id": uuid.UUID(user_id)})).one_or_none()
        return Account(int(row.balance), row.currency) if row else None

    async def lock(self, user_id: str) -> bool:
        """Serialize money moves of one account for the rest of the transaction (False: no account)."""
        row = await self.conn.execute(_LOCK, {"user_id": uuid.UUID(user_id)})
        return row.first() is not None

    async def move(self, user_id: str, delta: int) -> int | None:
        """The new balance, or None when the move would overdraw (or the account does not exist)."""
        row = (await self.conn.execute(_MOVE, {"user_id": uuid.UUID(user_id), "delta": delta})).one_or_none()
        return int(row.balance) if row else None


class PostgresLedger:
    """The append-only operations table, and the money operation that moves a balance with its row."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def operate(
        self,
        user_id: str,
        kind: OperationKind,
        amount: int,
        order_id: str | None,
        key: str | None,
        request_hash: str,
    ) -> Outcome | None:
        """Apply one operation in one statement (appended, or refused for insufficient funds, the
        answer stored with `key`); None when `key` was taken by an earlier request, which then
        changed nothing here."""
        operation_id = uuid.uuid4()
        # The answer's body, whose balance and time the statement fills in once it holds the lock.
        now = rfc3339(datetime.now(UTC))
        template = operation_body(Operation(str(operation_id), kind, amount, 0, now, order_id))
        params = {
            "user_id": uuid.UUID(user_id),
            "delta": signed_amount(kind, amount),
            "done": orjson.dumps(template).decode(),
            "refused": orjson.dumps(REFUSED_BODY).decode(),
            "operation_id": operation_id,
            "kind": kind.value,
            "amount": amount,
            "order_id": uuid.UUID(order_id) if order_id else None,
            "key": key,
        }
        if key is None:
            row: Row | None = (await self.conn.execute(_OPERATE, params)).one()
        else:
            params.update(user_id_text=user_id, request_hash=request_hash, operation_ref=str(operation_id))
            row = (await self.conn.execute(_OPERATE_CLAIMED, params)).one_or_none()
        if row is None:
            return None  # the key's first request did the work
        return outcome_of(int(row.status_code), orjson.loads(row.response), replay=False)

    async def first_answer(self, user_id: str, key: str, request_hash: str) -> Outcome | None:
        """The answer stored with a taken key, to replay (None: its request is still being
        finished); raises KeyReused when the key came with another request body."""
        try:
            stored = await existing_claim(self.conn, user_id, key, request_hash)
        except IdempotencyKeyReused as reused:
            raise KeyReused(reused.message) from reused
        if stored.status_code is None:
            return None
        return outcome_of(stored.status_code, stored.body, replay=True)

    async def append(
        self,
        user_id: str,
        kind: OperationKind,
        amount: int,
        balance_after: int,
        order_id: str | None,
        key: str | None,
    ) -> Operation:
        """Append a row for a balance already moved in this transaction."""
        operation_id = uuid.uuid4()
        params = {
            "operation_id": operation_id,
            "user_id": uuid.UUID(user_id),
            "kind": kind.value,
            "amount": amount,
            "balance_after": balance_after,
            "order_id": uuid.UUID(order_id) if order_id else None,
            "key": key,
        }
        created_at = (await self.conn.execute(_RECORD, params)).scalar_one()
        return Operation(str(operation_id), kind, amount, balance_after, rfc3339(created_at), order_id)

    async def of_user(self, user_id: str, limit: int) -> list[Operation]:
        """The user's operations, newest first."""
        rows = (await self.conn.execute(_OPERATIONS, {"user_id": uuid.UUID(user_id), "limit": limit})).all()
        return [
            Operation(
                r.operation_id,
                OperationKind(r.kind),
                int(r.amount),
                int(r.balance_after),
                rfc3339(r.created_at),
                r.order_id,
            )
            for r in rows
        ]

    async def net_paid_for_order(self, user_id: str, order_id: str) -> int:
        """Payments minus refunds recorded for one order of one user."""
        params = {"user_id": uuid.UUID(user_id), "order_id": uuid.UUID(order_id)}
        return int((await self.conn.execute(_NET_PAID, params)).scalar_one())
