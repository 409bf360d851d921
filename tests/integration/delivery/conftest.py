"""A real PostgreSQL for delivery's storage (tests/engines.py: $DATABASE_URL, else the session's
embedded one). Each session gets a database of its own (a unique prefix), migrated to head and
dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import sandwich.services.delivery as delivery
from sandwich.platform.db import Database, plain_url
from sandwich.platform.settings import Settings

MIGRATIONS = Path(delivery.__file__).parent / "migrations"


@pytest.fixture(scope="session")
def server_url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture(scope="session")
async def db(server_url: str) -> AsyncIterator[Database]:
    settings = Settings(database_url=server_url, db_prefix=f"t{uuid.uuid4().hex[:12]}")
    database = Database(settings, "delivery", pool_size=20, max_overflow=10)
    try:
        await database.prepare(MIGRATIONS)
        yield database
    finally:
        await database.close()
        conn = await asyncpg.connect(plain_url(server_url, make_url(server_url).database or "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def clean(db: Database) -> Database:
    async with db.begin() as conn:
        await conn.execute(text("TRUNCATE deliveries, inbox"))
    return db
