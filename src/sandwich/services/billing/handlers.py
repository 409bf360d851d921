"""Event consumers of billing: an account is opened when a user is created (ADR 003)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from sandwich.platform.events import USER_CREATED, Envelope, UserCreated
from sandwich.services.billing import storage


async def open_account_for_new_user(conn: AsyncConnection, envelope: Envelope) -> None:
    if envelope.type != USER_CREATED:
        return
    user = UserCreated.model_validate(envelope.payload)
    await storage.open_account(conn, user.user_id, user.username)
