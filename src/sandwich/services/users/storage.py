"""The profiles table of the users database."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from sandwich.platform.sql import Connection
from sandwich.services.users.domain import Profile

_COLUMNS = "user_id::text AS user_id, username, email, phone, full_name"


def _profile(row: object) -> Profile:
    return Profile(row.user_id, row.username, row.email, row.phone, row.full_name)  # type: ignore[attr-defined]


async def insert_profile(conn: Connection, profile: Profile) -> bool:
    """True when the profile was created now; False when this user id, or this username letter case
    aside, already had one (a concurrent request may have stored it a moment ago)."""
    result = await conn.execute(
        text(
            "INSERT INTO profiles (user_id, username, email, phone, full_name) "
            "VALUES (:user_id, :username, :email, :phone, :full_name) ON CONFLICT DO NOTHING"
        ),
        {
            "user_id": uuid.UUID(profile.user_id),
            "username": profile.username,
            "email": profile.email,
            "phone": profile.phone,
            "full_name": profile.full_name,
        },
    )
    return bool(result.rowcount)


async def profile_by_username(conn: Connection, username: str) -> Profile | None:
    """The profile of `username` compared without letter case, as auth compares them."""
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM profiles WHERE lower(username) = lower(:u)"), {"u": username}
        )
    ).one_or_none()
    return _profile(row) if row else None


async def profile_by_id(conn: Connection, user_id: str) -> Profile | None:
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM profiles WHERE user_id = :id"), {"id": uuid.UUID(user_id)}
        )
    ).one_or_none()
    return _profile(row) if row else None


async def update_profile(
    conn: Connection, user_id: str, email: str, phone: str | None, full_name: str | None
) -> Profile | None:
    row = (
        await conn.execute(
            text(
                "UPDATE profiles SET email = :email, phone = :phone, full_name = :full_name, updated_at = now() "
                f"WHERE user_id = :id RETURNING {_COLUMNS}"
            ),
            {"id": uuid.UUID(user_id), "email": email, "phone": phone, "full_name": full_name},
        )
    ).one_or_none()
    return _profile(row) if row else None


class PostgresProfiles:
    """The profiles repository on one connection (the statements above)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def add(self, profile: Profile) -> bool:
        return await insert_profile(self.conn, profile)

    async def by_username(self, username: str) -> Profile | None:
        return await profile_by_username(self.conn, username)

    async def by_id(self, user_id: str) -> Profile | None:
        return await profile_by_id(self.conn, user_id)

    async def update(
        self, user_id: str, email: str, phone: str | None, full_name: str | None
    ) -> Profile | None:
        return await update_profile(self.conn, user_id, email, phone, full_name)
