"""PostgreSQL access: one database per service on one server, migrations applied at start.

SQLAlchemy's engine owns the pool, the driver's codecs and the migrations (Alembic); the services'
statements (`text()`, compiled once) run on the pooled asyncpg connection itself (sql.py). The
database name is `<prefix>_<service>`, so that one server can hold every service's data while no
service can read another's tables through its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import structlog
from sqlalchemy import Connection as SyncConnection
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from sandwich.platform.settings import Settings
from sandwich.platform.sql import Connection

log = structlog.get_logger("db")

_RETURNED_AT = "sandwich_returned_at"
"""Where a pooled connection's record keeps when it was last handed back (time.monotonic())."""


def _millis(seconds: float) -> str:
    return str(max(0, round(seconds * 1000)))


def service_database_name(settings: Settings, service: str) -> str:
    return f"{settings.db_prefix}_{service}"


def _server_url(settings: Settings) -> str:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (sandwich up starts an embedded PostgreSQL and sets it)")
    return settings.database_url


def async_url(url: str, database: str) -> str:
    """The SQLAlchemy asyncpg URL of `database` on the server that `url` points at.

    libpq's `sslmode` becomes asyncpg's `ssl` keyword (SQLAlchemy hands query parameters to
    asyncpg.connect as they are, and asyncpg's keyword is `ssl`).
    """
    parsed = make_url(url).set(drivername="postgresql+asyncpg", database=database)
    if "sslmode" in parsed.query:
        query = dict(parsed.query)
        query["ssl"] = query.pop("sslmode")
        parsed = parsed.set(query=query)
    return parsed.render_as_string(hide_password=False)


def plain_url(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


async def ensure_database(server_url: str, database: str) -> None:
    """Create the service's database if it does not exist yet (safe when several instances race)."""
    conn = await asyncpg.connect(plain_url(server_url, make_url(server_url).database or "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{database}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass
    finally:
        await conn.close()


_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(?:[\"']([^\"']+)[\"']|None)", re.MULTILINE)


def head_revision(migrations_dir: Path) -> str | None:
    """The newest revision of a service's migrations, read from the files without Alembic.

    A service whose database is already there skips Alembic altogether: importing it (and Mako)
    costs every process about 10 MB for the life of the process. `sandwich up` migrates all the
    databases in its own process before it starts the services. None when the files do not tell
    one head (Alembic then decides).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (migrations_dir / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        if (revision := _REVISION.search(source)) is None:
            continue
        revisions.add(revision.group(1))
        if (parent := _DOWN_REVISION.search(source)) is not None and parent.group(1):
            parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def _is_at_revision(conn: AsyncConnection, revision: str) -> bool:
    table = (await conn.execute(text("SELECT to_regclass('alembic_version')"))).scalar()
    if table is None:
        return False
    current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    return list(current) == [revision]


def _upgrade(connection: SyncConnection, migrations_dir: Path) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class Database:
    """The engine of one service's own database."""

    def __init__(
        self,
        settings: Settings,
        service: str,
        *,
        pool_size: int | None = None,
        max_overflow: int | None = None,
    ):
        """`pool_size` connections are kept once opened (settings.db_pool_size); the overflow ones are
        closed when handed back. It is sized for a busy service: an overflow connection costs a new
        PostgreSQL backend and an empty prepared-statement cache on every burst. With 32 requests in
        flight, orders' 20 opened and closed some 17 connections a second (pg_stat_database.sessions),
        about a fifth of the machine's CPU in backends that came and went.
        """
        pool_size = settings.db_pool_size if pool_size is None else pool_size
        max_overflow = settings.db_max_overflow if max_overflow is None else max_overflow
        self.server_url = _server_url(settings)
        self.name = service_database_name(settings, service)
        self.idle_seconds = settings.db_idle_seconds
        self._pool_limit = pool_size + max_overflow
        self.engine: AsyncEngine = create_async_engine(
            async_url(self.server_url, self.name),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=False,
            pool_recycle=1800,
            # Last in, first out: a light load keeps reusing the same few connections, and the rest
            # stay unused long enough for the server to close them (see _take).
            pool_use_lifo=True,
            connect_args={"server_settings": {"idle_session_timeout": _millis(self.idle_seconds)}},
        )

    async def prepare(self, migrations_dir: Path) -> None:
        """Create the database if needed and bring its schema to head, one instance at a time."""
        for attempt in range(60):
            try:
                await ensure_database(self.server_url, self.name)
                break
            except (OSError, asyncpg.PostgresError) as exc:
                if attempt == 59:
                    raise
                log.warning("database_not_ready", error=repr(exc))
                await asyncio.sleep(0.5)
        lock_id = zlib.crc32(self.name.encode())
        head = head_revision(migrations_dir)
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
            if head is not None and await _is_at_revision(conn, head):
                return
            await conn.run_sync(_upgrade, migrations_dir)

    @asynccontextmanager
    async def begin(self, *, durable: bool = True) -> AsyncIterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises.

        `durable=False` commits without waiting for the WAL to reach the disk (synchronous_commit
        off, for this transaction only): only for writes that are safe to lose in a server crash
        because they are redone anyway (the outbox relay's "published" marks: a lost mark publishes
        the event again, and consumers drop the repeat). The wait was the relay's longest step
        under load, and every event behind it waited too.
        """
        async with self.connect() as conn:
            if durable:
                async with conn.driver.transaction():
                    yield conn
                return
            await conn.driver.execute("BEGIN; SET LOCAL synchronous_commit TO off")
            try:
                yield conn
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError):
                    with contextlib.suppress(Exception):
                        await conn.driver.execute("ROLLBACK")
                raise
            await conn.driver.execute("COMMIT")

    async def _take(self) -> PoolProxiedConnection:
        """A pooled connection the server will not close under our feet.

        The server closes a session idle for `idle_seconds` (the pool's connections are opened with
        that idle_session_timeout): the backends a burst opened go away once the service is quiet,
        instead of holding their memory for good (after one benchmark phase, PostgreSQL's share of
        the platform's idle memory went from 115 MB to 584 MB). A connection found closed, or idle
        for nearly that long (the server may be closing it right now), is dropped for another one.
        """
        for _ in range(self._pool_limit + 1):
            fairy = await greenlet_spawn(self.engine.sync_engine.pool.connect)
            returned_at = fairy.info.pop(_RETURNED_AT, None)
            stale = (
                self.idle_seconds > 0
                and returned_at is not None
                and time.monotonic() - returned_at > self.idle_seconds * 0.8
            )
            driver = fairy.driver_connection
            if not stale and driver is not None and not driver.is_closed():
                return fairy
            await greenlet_spawn(fairy.invalidate)
            await greenlet_spawn(fairy.close)
        return await greenlet_spawn(self.engine.sync_engine.pool.connect)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        """A pooled connection for the block; each statement commits on its own (see sql.py)."""
        fairy = await self._take()
        driver: asyncpg.Connection = fairy.driver_connection
        broken = False
        try:
            yield Connection(driver)
        except (asyncio.CancelledError, asyncpg.InterfaceError, OSError):
            # Cancelled or cut off mid-statement: what the connection is doing is unknown.
            broken = True
            raise
        finally:
            if broken or driver.is_closed() or driver.is_in_transaction():
                await greenlet_spawn(fairy.invalidate)  # closed instead of going back to the pool
            else:
                fairy.info[_RETURNED_AT] = time.monotonic()
            await greenlet_spawn(fairy.close)

    async def healthy(self) -> bool:
        try:
            async with self.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self.engine.dispose()
