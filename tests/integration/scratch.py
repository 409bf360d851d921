"""A database of a test's own on the test PostgreSQL ($DATABASE_URL, else the session's embedded
one: tests/engines.py), dropped afterwards: the one way the integration tests get one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from sandwich.platform.db import Database, plain_url
from sandwich.platform.settings import Settings
from tests import engines


def server_url() -> str:
    """The test server's maintenance database URL (started on first use when embedded)."""
    return engines.postgres_url()


@asynccontextmanager
async def scratch_database(
    service: str, migrations: Path | None = None, *, idle_seconds: float = 60.0, **pool: int
) -> AsyncIterator[Database]:
    """A fresh database named after a unique prefix: with `migrations`, at the service's newest
    schema; without, empty. `pool` goes to Database (pool_size, max_overflow); `idle_seconds` is
    how long an unused pooled connection lives."""
    server = server_url()
    settings = Settings(
        database_url=server, db_prefix=f"it_{uuid.uuid4().hex[:12]}", db_idle_seconds=idle_seconds
    )
    database = Database(settings, service, **pool)
    if migrations is not None:
        await database.prepare(migrations)
    else:
        admin = await asyncpg.connect(plain_url(server, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{database.name}"')
        finally:
            await admin.close()
    try:
        yield database
    finally:
        await database.close()
        admin = await asyncpg.connect(plain_url(server, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        finally:
            await admin.close()
