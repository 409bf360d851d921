"""`sandwich migrate`: every service's database brought to its newest schema, in one process.

A service still migrates its own database at start (`sandwich serve` alone must work), but it finds
it up to date and skips Alembic (platform/db.py), which keeps Alembic and Mako out of every
long-running process.

With `roles_dir` (`--service-roles`, as `sandwich up` runs it) every service gets a role of its own
that owns its database and what the migrations made in it (platform/db_roles.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import structlog
from sqlalchemy.engine import make_url

import sandwich.services
from sandwich.platform import db_roles
from sandwich.platform.db import Database, plain_url, service_database_name
from sandwich.platform.settings import SERVICES, Settings

log = structlog.get_logger("migrate")

SERVICES_DIR = Path(sandwich.services.__file__).parent


def migrations_dir(service: str) -> Path:
    return SERVICES_DIR / service / "migrations"


def services_with_migrations() -> list[str]:
    return [name for name in SERVICES if (migrations_dir(name) / "versions").is_dir()]


def migrate_services(
    names: Sequence[str], settings: Settings | None = None, *, roles_dir: Path | None = None
) -> None:
    asyncio.run(_migrate(list(names), settings or Settings(), roles_dir))


async def _provide_roles(names: list[str], settings: Settings, roles_dir: Path) -> dict[str, str]:
    """Each service's role and database, owned by the role; {} when the URL may not make roles."""
    url = settings.database_url
    admin = await asyncpg.connect(plain_url(url, make_url(url).database or "postgres"))
    try:
        if not await db_roles.can_manage_roles(admin):
            log.warning("service_roles_skipped", reason="DATABASE_URL's role is not a superuser")
            return {}
        roles = {name: service_database_name(settings, name) for name in names}
        for role in roles.values():
            await db_roles.ensure_service_role(admin, role, roles_dir)
        return roles
    finally:
        await admin.close()


async def _migrate(names: list[str], settings: Settings, roles_dir: Path | None) -> None:
    roles: dict[str, str] = {}
    if roles_dir is not None:
        db_roles.forget_roles(roles_dir)
        roles = await _provide_roles(names, settings, roles_dir)

    async def one(name: str) -> None:
        began = time.monotonic()
        database = Database(settings, name, pool_size=1, max_overflow=0)
        try:
            await database.prepare(migrations_dir(name))
        finally:
            await database.close()
        handed = await db_roles.hand_over(settings.database_url, roles[name]) if name in roles else 0
        log.info(
            "database_migrated", service=name, seconds=round(time.monotonic() - began, 2), handed_over=handed
        )

    # One after the other: Alembic's `context` and `op` are module-level proxies, so two upgrades
    # interleaved on one event loop would write into each other's databases.
    for name in names:
        await one(name)
    if roles_dir is not None and roles:
        db_roles.write_roles_file(roles_dir, roles)
