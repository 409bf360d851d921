"""A real PostgreSQL for delivery's storage: $DATABASE_URL, else the local server on 127.0.0.1:5432,
else an embedded one. Each session gets a database of its own (a unique prefix), migrated to head
and dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from sandwich.platform.db import Database, plain_url
from sandwich.platform.embedded.postgres import EmbeddedPostgres
from sandwich.platform.settings import Settings
from sandwich.services import delivery

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
MIGRATIONS = Path(delivery.__file__).parent / "migrations"


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def embedded_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EmbeddedPostgres]]:
    """Started only when no server is at hand (see server_url)."""
    started: list[EmbeddedPostgres] = []
    yield started
    for pg in started:
        pg.stop()


@pytest.fixture(scope="session")
async def server_url(
    embedded_postgres: list[EmbeddedPostgres], tmp_path_factory: pytest.TempPathFactory
) -> str:
    external = os.environ.get("DATABASE_URL")
    if external:
        return external
    if await _reachable(LOCAL_SERVER):
        return LOCAL_SERVER
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    pg.start()
    embedded_postgres.append(pg)
    return pg.url


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
