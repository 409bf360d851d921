"""Each service reaches only its own data: the running platform's PostgreSQL asks every connection for
a password, each service process connects as a role of its own that owns its database and nothing
else, and auth's token signing keys are not readable from its database alone."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import asyncpg
import psutil
import pytest
from sqlalchemy.engine import make_url

from sandwich.platform import db_roles
from sandwich.platform.db import plain_url
from sandwich.platform.embedded.postgres_access import read_passfile_password
from sandwich.supervisor import Platform

pytestmark = pytest.mark.e2e


def _service_database_url(platform: Platform, service: str) -> str:
    pid = platform.service_pid(service)
    assert pid is not None, f"{service} does not run"
    return psutil.Process(pid).environ().get("DATABASE_URL", "")


def _roles(platform: Platform) -> dict[str, str]:
    roles = db_roles.read_roles(platform.database_roles_dir)
    if not roles:
        pytest.skip(
            "DATABASE_URL's role cannot make roles here: the services share that URL (printed reason)"
        )
    return roles


async def test_the_database_refuses_a_connection_without_the_password(platform: Platform) -> None:
    url = make_url(platform.database_url)
    for user in ("postgres", *_roles(platform).values()):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host=url.host, port=url.port, user=user, database="postgres", password="", ssl=False
            )


async def test_each_service_process_connects_as_its_own_role(platform: Platform) -> None:
    roles = _roles(platform)
    assert _service_database_url(platform, "gateway") == "", "the gateway has no database, so no URL"
    for service, role in roles.items():
        if service not in platform.services:
            continue
        url = _service_database_url(platform, service)
        parts = urlsplit(url)
        assert (parts.username, parts.path.lstrip("/")) == (role, role), url
        assert parts.password is None, "the password is in the passfile, not in the environment"
        assert parse_qs(parts.query)["passfile"] == [
            str(db_roles.passfile_path(platform.database_roles_dir, role))
        ]
        conn = await asyncpg.connect(url)
        try:
            me = await conn.fetchrow(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            assert tuple(me) == (role, False)
        finally:
            await conn.close()


async def test_a_service_role_cannot_read_another_database_or_run_programs(platform: Platform) -> None:
    roles = _roles(platform)
    orders_url = _service_database_url(platform, "orders")
    password = read_passfile_password(db_roles.passfile_path(platform.database_roles_dir, roles["orders"]))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(plain_url(orders_url, roles["billing"]), password=password)
    conn = await asyncpg.connect(orders_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="external program"):
            await conn.execute("COPY (SELECT 1) TO PROGRAM 'id'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SELECT pg_read_file('postgresql.conf')")
    finally:
        await conn.close()


async def test_auth_keeps_its_token_signing_keys_sealed(platform: Platform) -> None:
    roles = _roles(platform)
    conn = await asyncpg.connect(plain_url(platform.database_url, roles["auth"]))
    try:
        plain = await conn.fetchval("SELECT count(*) FROM signing_keys WHERE private_pem IS NOT NULL")
        sealed = await conn.fetch("SELECT sealed_pem FROM signing_keys")
    finally:
        await conn.close()
    assert plain == 0
    assert sealed and all(b"PRIVATE KEY" not in bytes(row["sealed_pem"]) for row in sealed)
