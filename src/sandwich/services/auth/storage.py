"""Credentials and signing keys of the auth database."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from sqlalchemy import text

from sandwich.platform.sealing import Sealer
from sandwich.platform.sql import Connection
from sandwich.platform.tokens import SigningKey
from sandwich.services.auth.domain import Credential

_COLUMNS = "user_id::text AS user_id, username, password_hash, roles, food_point_id, token_version"


def _credential(row: Any) -> Credential:
    return Credential(
        row.user_id, row.username, row.password_hash, list(row.roles), row.food_point_id, row.token_version
    )


async def insert_credential(
    conn: Connection, user_id: str, username: str, password_hash: str, roles: list[str]
) -> bool:
    """True when stored; False when the username, letter case aside, is taken (the failed insert is
    undone to its savepoint, so the caller's transaction goes on)."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                text(
                    "INSERT INTO credentials (user_id, username, password_hash, roles) "
                    "VALUES (:user_id, :username, :hash, :roles)"
                ),
                {"user_id": uuid.UUID(user_id), "username": username, "hash": password_hash, "roles": roles},
            )
    except asyncpg.UniqueViolationError:
        return False
    return True


async def delete_credential(conn: Connection, user_id: str) -> None:
    await conn.execute(text("DELETE FROM credentials WHERE user_id = :id"), {"id": uuid.UUID(user_id)})


async def credential_by_username(conn: Connection, username: str) -> Credential | None:
    """The credential of `username` compared without letter case (`ALICE` finds `alice`)."""
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM credentials WHERE lower(username) = lower(:u)"), {"u": username}
        )
    ).one_or_none()
    if row is None:
        return None
    return _credential(row)


async def set_roles(
    conn: Connection, username: str, roles: list[str], food_point_id: str | None
) -> Credential | None:
    row = (
        await conn.execute(
            text(
                "UPDATE credentials SET roles = :roles, food_point_id = :fp, "
                "token_version = token_version + 1 WHERE lower(username) = lower(:u) "
                f"RETURNING {_COLUMNS}"
            ),
            {"u": username, "roles": roles, "fp": food_point_id},
        )
    ).one_or_none()
    if row is None:
        return None
    return _credential(row)


async def credentials_page(
    conn: Connection, *, role: str | None, prefix: str | None, after: str | None, limit: int
) -> list[Credential]:
    """Up to `limit` credentials in username order (without letter case), after `after`; only those
    holding `role`, and only usernames starting with `prefix` (without letter case), when given.
    Keyset paging: a page costs the same wherever it is in the list."""
    where: list[str] = []
    params: dict[str, object] = {"limit": limit}
    if role is not None:
        where.append(":role = ANY(roles)")
        params["role"] = role
    if prefix is not None:
        where.append("lower(username) LIKE :prefix ESCAPE '\\'")
        params["prefix"] = _like_escaped(prefix.lower()) + "%"
    if after is not None:
        where.append("lower(username) > lower(:after)")
        params["after"] = after
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM credentials {condition} ORDER BY lower(username) LIMIT :limit"), params
    )
    return [_credential(row) for row in rows]


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def token_version(conn: Connection, user_id: str) -> int | None:
    """The user's current token version; None when there is no such user."""
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        return None
    row = (
        await conn.execute(text("SELECT token_version FROM credentials WHERE user_id = :id"), {"id": key})
    ).one_or_none()
    return None if row is None else int(row.token_version)


async def signing_keys(conn: Connection, sealer: Sealer) -> list[SigningKey]:
    """The stored keys, newest first, opened (a key still kept plain, from before sealing, as it is)."""
    rows = (
        await conn.execute(
            text("SELECT kid, private_pem, sealed_pem FROM signing_keys ORDER BY created_at DESC")
        )
    ).all()
    return [
        SigningKey(
            row.kid,
            sealer.open(bytes(row.sealed_pem), row.kid)
            if row.sealed_pem is not None
            else bytes(row.private_pem),
        )
        for row in rows
    ]


async def ensure_signing_key(conn: Connection, sealer: Sealer) -> list[SigningKey]:
    """The stored keys, newest first; the first start creates one, and every start seals a key found
    plain (serialized by a lock, so two instances starting together make one key)."""
    await conn.execute(text("LOCK TABLE signing_keys IN EXCLUSIVE MODE"))
    keys = await signing_keys(conn, sealer)
    plain = (await conn.execute(text("SELECT kid FROM signing_keys WHERE private_pem IS NOT NULL"))).scalars()
    for kid in set(plain):
        key = next(k for k in keys if k.kid == kid)
        await conn.execute(
            text("UPDATE signing_keys SET sealed_pem = :sealed, private_pem = NULL WHERE kid = :kid"),
            {"kid": kid, "sealed": sealer.seal(key.private_pem, kid)},
        )
    if not keys:
        key = SigningKey.generate()
        await conn.execute(
            text("INSERT INTO signing_keys (kid, sealed_pem) VALUES (:kid, :sealed)"),
            {"kid": key.kid, "sealed": sealer.seal(key.private_pem, key.kid)},
        )
        keys = [key]
    return keys


class PostgresCredentials:
    """The credentials repository on one connection (the statements above)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def add(self, credential: Credential) -> bool:
        return await insert_credential(
            self.conn, credential.user_id, credential.username, credential.password_hash, credential.roles
        )

    async def remove(self, user_id: str) -> None:
        await delete_credential(self.conn, user_id)

    async def by_username(self, username: str) -> Credential | None:
        return await credential_by_username(self.conn, username)

    async def set_roles(
        self, username: str, roles: list[str], food_point_id: str | None
    ) -> Credential | None:
        return await set_roles(self.conn, username, roles, food_point_id)

    async def page(
        self, *, role: str | None, prefix: str | None, after: str | None, limit: int
    ) -> list[Credential]:
        return await credentials_page(self.conn, role=role, prefix=prefix, after=after, limit=limit)

    async def token_version(self, user_id: str) -> int | None:
        return await token_version(self.conn, user_id)


class PostgresSigningKeys:
    """The signing keys repository on one connection: kept sealed with `sealer`'s key."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def ensure(self, sealer: Sealer) -> list[SigningKey]:
        return await ensure_signing_key(self.conn, sealer)
