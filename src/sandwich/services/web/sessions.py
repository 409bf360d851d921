"""Sessions of the apps, kept server-side in web's own database.

The browser holds a random id in an HttpOnly, SameSite=Strict cookie; the table keeps only its
SHA-256 (a dump gives no usable cookie), the user's access token sealed with web's key (a dump
gives no usable token either) and a CSRF token that every form of the session carries back.
Signing out deletes the row: the cookie means nothing from then on, wherever it was copied.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from sandwich.platform.sealing import Sealer
from sandwich.platform.sql import Connection

COOKIE = "sandwich_session"
ID_BYTES = 32


@dataclass(frozen=True)
class Session:
    """A signed-in person, as the apps need them: who, with which roles, and the token for the gateway."""

    user_id: str
    username: str
    roles: frozenset[str]
    food_point_id: str | None
    token: str
    csrf_token: str
    expires_at: datetime

    @property
    def home(self) -> str:
        return home_of(self.roles)


def home_of(roles: frozenset[str]) -> str:
    """Where signing in lands: a cook's kitchen, a courier's deliveries, an admin's console, else
    the menu."""
    if "cook" in roles:
        return "/kitchen"
    if "courier" in roles:
        return "/courier"
    if "admin" in roles:
        return "/ops/food-points"
    return "/menu"


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def open_session(
    conn: Connection,
    sealer: Sealer,
    *,
    token: str,
    user_id: str,
    username: str,
    roles: frozenset[str],
    food_point_id: str | None,
    lifetime_seconds: int,
) -> str:
    """A new session; the id for the cookie (never stored as it is)."""
    session_id = secrets.token_urlsafe(ID_BYTES)
    digest = _hash(session_id)
    await conn.execute(
        text(
            "INSERT INTO sessions (session_hash, sealed_token, csrf_token, user_id, username, roles,"
            " food_point_id, expires_at) VALUES (:hash, :token, :csrf, :user_id, :username, :roles,"
            " :food_point_id, :expires_at)"
        ),
        {
            "hash": digest,
            "token": sealer.seal(token.encode(), digest.hex()),
            "csrf": secrets.token_urlsafe(24),
            "user_id": uuid.UUID(user_id),
            "username": username,
            "roles": sorted(roles),
            "food_point_id": uuid.UUID(food_point_id) if food_point_id else None,
            "expires_at": datetime.now(UTC) + timedelta(seconds=lifetime_seconds),
        },
    )
    return session_id


async def find_session(conn: Connection, sealer: Sealer, session_id: str | None) -> Session | None:
    """The live session of the cookie; None when there is none, it ended or it expired."""
    if not session_id or len(session_id) > 128:
        return None
    digest = _hash(session_id)
    row = (
        await conn.execute(
            text(
                "SELECT sealed_token, csrf_token, user_id, username, roles, food_point_id, expires_at"
                " FROM sessions WHERE session_hash = :hash AND expires_at > now()"
            ),
            {"hash": digest},
        )
    ).one_or_none()
    if row is None:
        return None
    return Session(
        user_id=str(row.user_id),
        username=row.username,
        roles=frozenset(row.roles),
        food_point_id=str(row.food_point_id) if row.food_point_id else None,
        token=sealer.open(bytes(row.sealed_token), digest.hex()).decode(),
        csrf_token=row.csrf_token,
        expires_at=row.expires_at,
    )


async def close_session(conn: Connection, session_id: str | None) -> None:
    if session_id:
        await conn.execute(
            text("DELETE FROM sessions WHERE session_hash = :hash"), {"hash": _hash(session_id)}
        )


async def forget_expired(conn: Connection) -> int:
    result = await conn.execute(text("DELETE FROM sessions WHERE expires_at <= now()"))
    return int(result.rowcount)
