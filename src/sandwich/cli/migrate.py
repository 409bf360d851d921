"""`sandwich migrate`: every service's database brought to its newest schema, in one process.

A service still migrates its own database at start (`sandwich serve` alone must work), but it finds
it up to date and skips Alembic (platform/db.py), which keeps Alembic and Mako out of every
long-running process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

import sandwich.services
from sandwich.platform.db import Database
from sandwich.platform.settings import SERVICES, Settings

log = structlog.get_logger("migrate")

SERVICES_DIR = Path(sandwich.services.__file__).parent


def migrations_dir(service: str) -> Path:
    return SERVICES_DIR / service / "migrations"


def services_with_migrations() -> list[str]:
    return [name for name in SERVICES if (migrations_dir(name) / "versions").is_dir()]


def migrate_services(names: Sequence[str], settings: Settings | None = None) -> None:
    asyncio.run(_migrate(list(names), settings or Settings()))


async def _migrate(names: list[str], settings: Settings) -> None:
    async def one(name: str) -> None:
        began = time.monotonic()
        database = Database(settings, name, pool_size=1, max_overflow=0)
        try:
            await database.prepare(migrations_dir(name))
        finally:
            await database.close()
        log.info("database_migrated", service=name, seconds=round(time.monotonic() - began, 2))

    # One after the other: Alembic's `context` and `op` are module-level proxies, so two upgrades
    # interleaved on one event loop would write into each other's databases.
    for name in names:
        await one(name)
