"""`sandwich migrate --service-roles`: every service connects as a role of its own that owns its
database and nothing else (real PostgreSQL: $DATABASE_URL or the session's embedded server)."""

from __future__ import annotations

import asyncio
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sandwich.cli.migrate import migrate_services
from sandwich.platform import db_roles
from sandwich.platform.db import plain_url
from sandwich.platform.embedded.postgres_access import read_passfile_password
from sandwich.platform.settings import Settings
from tests.integration.scratch import server_url

pytestmark = pytest.mark.integration

SERVICES = ["billing", "orders"]


async def _drop(server: str, prefix: str) -> None:
    admin = await asyncpg.connect(plain_url(server, "postgres"))
    try:
        for service in SERVICES:
            await admin.execute(f'DROP DATABASE IF EXISTS "{prefix}_{service}" WITH (FORCE)')
            await admin.execute(f'DROP ROLE IF EXISTS "{prefix}_{service}"')
    finally:
        await admin.close()


@pytest.fixture
async def migrated(tmp_path: Path) -> AsyncIterator[tuple[Settings, Path]]:
    server = server_url()
    settings = Settings(database_url=server, db_prefix=f"roles_{uuid.uuid4().hex[:10]}")
    roles_dir = tmp_path / "secrets" / "postgres"
    await asyncio.to_thread(migrate_services, SERVICES, settings, roles_dir=roles_dir)
    try:
        yield settings, roles_dir
    finally:
        await _drop(server, settings.db_prefix)


async def _connect_as(settings: Settings, roles_dir: Path, service: str) -> asyncpg.Connection:
    role = f"{settings.db_prefix}_{service}"
    return await asyncpg.connect(
        plain_url(db_roles.service_url(settings.database_url, role, roles_dir), role)
    )


async def test_each_service_owns_its_database_and_everything_in_it(migrated: tuple[Settings, Path]) -> None:
    settings, roles_dir = migrated
    assert db_roles.read_roles(roles_dir) == {s: f"{settings.db_prefix}_{s}" for s in SERVICES}
    conn = await _connect_as(settings, roles_dir, "billing")
    try:
        me = await conn.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        assert tuple(me) == (False, False, False)
        not_mine = await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> current_user"
        )
        assert not_mine == []
        functions = await conn.fetch(
            "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> current_user"
        )
        assert functions == [], "the ledger's append-only trigger function belongs to billing too"
    finally:
        await conn.close()
    for service in SERVICES:
        path = db_roles.passfile_path(roles_dir, f"{settings.db_prefix}_{service}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_service_role_cannot_reach_another_database_or_the_server(
    migrated: tuple[Settings, Path],
) -> None:
    settings, roles_dir = migrated
    orders_role = f"{settings.db_prefix}_orders"
    password = read_passfile_password(db_roles.passfile_path(roles_dir, orders_role))
    assert password
    server = db_roles.service_url(settings.database_url, orders_role, roles_dir)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(plain_url(server, f"{settings.db_prefix}_billing"), password=password)
    conn = await _connect_as(settings, roles_dir, "orders")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="external program"):
            await conn.execute("COPY (SELECT 1) TO PROGRAM 'id'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE DATABASE stolen")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"ALTER ROLE \"{settings.db_prefix}_billing\" PASSWORD 'x'")
    finally:
        await conn.close()


async def test_a_second_migration_keeps_the_passwords_and_hands_over_what_the_superuser_made(
    migrated: tuple[Settings, Path],
) -> None:
    settings, roles_dir = migrated
    role = f"{settings.db_prefix}_orders"
    before = read_passfile_password(db_roles.passfile_path(roles_dir, role))
    admin = await asyncpg.connect(plain_url(settings.database_url, role))
    try:
        await admin.execute("CREATE TABLE made_by_the_superuser (x int)")
    finally:
        await admin.close()
    await asyncio.to_thread(migrate_services, SERVICES, settings, roles_dir=roles_dir)
    assert read_passfile_password(db_roles.passfile_path(roles_dir, role)) == before
    conn = await _connect_as(settings, roles_dir, "orders")
    try:
        assert (
            await conn.fetchval(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = $1", "made_by_the_superuser"
            )
            == role
        )
    finally:
        await conn.close()
