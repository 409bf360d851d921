"""Idempotency keys for HTTP calls that create or move money or orders.

The key row is inserted in the same transaction as the effect. PostgreSQL makes a concurrent insert
of the same key wait for the first transaction, so a duplicate either replays the stored answer or,
if the first attempt rolled back, does the work itself: the work happens once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.errors import ApiError
from sandwich.platform.sql import Connection

_INSERT = text(
    "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id) "
    "VALUES (:scope, :key, :hash, :resource_id) ON CONFLICT DO NOTHING"
)
_SELECT = text(
    "SELECT request_hash, resource_id, status_code, response FROM idempotency_keys WHERE scope = :scope AND key = :key"
)
_COMPLETE = text(
    "UPDATE idempotency_keys SET status_code = :status, response = :response, resource_id = :resource_id "
    "WHERE scope = :scope AND key = :key"
)
_ATTACH = text("UPDATE idempotency_keys SET resource_id = :resource_id WHERE scope = :scope AND key = :key")

MAX_KEY_LENGTH = 200


class IdempotencyKeyReused(Exception):
    """The key came before with another request body: the contract's 409 `idempotency_key_reused`,
    which each service's API answers (a use case lets it pass or turns it into its own refusal)."""

    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used with another request."


def request_hash(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            422, "invalid_idempotency_key", f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters."
        )
    return key


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int | None
    body: Any
    resource_id: str | None


async def claim_key(
    conn: Connection, scope: str, key: str, body_hash: str, resource_id: str | None = None
) -> StoredAnswer | None:
    """None when this request owns the key now; otherwise the earlier attempt's answer (maybe unfinished).

    `resource_id`, when the caller knows already what it will create, is recorded with the claim
    (one statement instead of a claim and an `attach_resource`). Raises IdempotencyKeyReused when
    the key was used with a different body.
    """
    inserted = await conn.execute(
        _INSERT, {"scope": scope, "key": key, "hash": body_hash, "resource_id": resource_id}
    )
    if inserted.rowcount:
        return None
    return await existing_claim(conn, scope, key, body_hash)


async def existing_claim(conn: Connection, scope: str, key: str, body_hash: str) -> StoredAnswer:
    """The earlier attempt's answer for a key that is taken (maybe unfinished); raises
    IdempotencyKeyReused when the key was used with a different body."""
    row = (await conn.execute(_SELECT, {"scope": scope, "key": key})).one()
    if row.request_hash != body_hash:
        raise IdempotencyKeyReused(key)
    body = orjson.loads(row.response) if row.response is not None else None
    return StoredAnswer(row.status_code, body, row.resource_id)


async def load_answer(conn: Connection, scope: str, key: str) -> StoredAnswer | None:
    row = (await conn.execute(_SELECT, {"scope": scope, "key": key})).one_or_none()
    if row is None:
        return None
    body = orjson.loads(row.response) if row.response is not None else None
    return StoredAnswer(row.status_code, body, row.resource_id)


async def attach_resource(conn: Connection, scope: str, key: str, resource_id: str) -> None:
    await conn.execute(_ATTACH, {"scope": scope, "key": key, "resource_id": resource_id})


async def store_answer(
    conn: Connection, scope: str, key: str, status_code: int, body: Any, resource_id: str | None = None
) -> None:
    await conn.execute(
        _COMPLETE,
        {
            "scope": scope,
            "key": key,
            "status": status_code,
            "response": orjson.dumps(body),
            "resource_id": resource_id,
        },
    )
