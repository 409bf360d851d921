"""What the kitchen's tables share: jsonb values in and out, ids from untrusted text, and the
supply version with the NOTIFY that wakes the assigners after a change of what food points can take."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.sql import Connection

NOTIFY_CHANNEL = "kitchen_assigner"


def json_value(raw: Any) -> Any:
    # SQLAlchemy's asyncpg dialect decodes jsonb; a plain string would mean a driver without that codec.
    return orjson.loads(raw) if isinstance(raw, str | bytes) else raw


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def as_uuid(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (the caller answers 404 or 422)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def bump_supply(conn: Connection) -> None:
    """Record that what food points can take changed (a point, its stock, a freed slot): waiting
    orders are tried again only after such a change, not on every pass."""
    await conn.execute(text("UPDATE supply SET version = version + 1 WHERE id = 1"))


class Supply:
    """The supply version (one row) and the assigners' wake-up, on one connection."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def version(self) -> int:
        return int((await self.conn.execute(text("SELECT version FROM supply WHERE id = 1"))).scalar_one())

    async def bump(self) -> None:
        await bump_supply(self.conn)

    def notify_assigner(self) -> None:
        """Wake every assigner once the caller's work has committed (`Connection.notify`)."""
        self.conn.notify(NOTIFY_CHANNEL)
