"""PostgreSQL access: one database per service on one server, migrations applied at start.

asyncpg's pool lends the connections; the services' statements (`text()`, compiled once by
SQLAlchemy) run on the pooled asyncpg connection itself (sql.py); SQLAlchemy's engine and Alembic
are used for the migrations alone, on a connection of their own. The
database name is `<prefix>_<service>`, so that one server can hold every service's data while no
service can read another's tables through its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from sqlalchemy import Connection as SyncConnection
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from sandwich.platform.pg_notify import SEND_STATEMENT, Notification, Notifier
from sandwich.platform.settings import Settings
from sandwich.platform.sql import Connection
from sandwich.platform.tracing import SpanKind, tracer

log = structlog.get_logger("db")


def _millis(seconds: float) -> str:
    return str(max(0, round(seconds * 1000)))


def service_database_name(settings: Settings, service: str) -> str:
    return f"{settings.db_prefix}_{service}"


def _server_url(settings: Settings) -> str:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (sandwich up starts an embedded PostgreSQL and sets it)")
    return with_password(settings.database_url, settings.database_password)


def with_password(url: str, password: str) -> str:
    """`url` with `password` for its user, unless it names one already (or there is none to add)."""
    parsed = make_url(url)
    if not password or parsed.password is not None:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


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


class DatabaseUnavailable(Exception):
    """The service's database cannot lend a connection now: refused, restarting, out of connection
    slots, or none of the pool's free within ACQUIRE_SECONDS. Answered as 503 (platform/errors.py):
    what a request did before is committed or not at all, so it can be repeated (with its
    Idempotency-Key, where it has one)."""

    def __init__(self, database: str, cause: BaseException):
        super().__init__(f"database {database} unavailable: {cause!r}")
        self.database = database


CONNECT_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, unreachable, reset; TimeoutError (no connection free in time) is one too
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)
CONNECTION_LOST: tuple[type[Exception], ...] = (
    DatabaseUnavailable,
    ConnectionError,
    asyncpg.ConnectionDoesNotExistError,  # the connection went away under a statement
    asyncpg.AdminShutdownError,  # the server was shut down, or the backend terminated
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
)
"""What a request that met an unreachable database raises: answered 503, not 500."""


class Database:
    """One service's own database: a pool of asyncpg connections, and its migrations."""

    def __init__(
        self,
        settings: Settings,
        service: str,
        *,
        pool_size: int | None = None,
        max_overflow: int | None = None,
    ):
        """At most `pool_size + max_overflow` connections (settings.db_pool_size, db_max_overflow),
        opened as the load asks for them and closed once unused for `db_idle_seconds`. It is sized
        for a busy service: with 32 requests in flight, a pool of 20 that closed its overflow on
        every hand-back opened and closed some 17 connections a second (pg_stat_database.sessions),
        about a fifth of the machine's CPU in backends that came and went.
        """
        pool_size = settings.db_pool_size if pool_size is None else pool_size
        max_overflow = settings.db_max_overflow if max_overflow is None else max_overflow
        self.server_url = _server_url(settings)
        self.name = service_database_name(settings, service)
        self.idle_seconds = settings.db_idle_seconds
        self._pool_limit = max(1, pool_size + max_overflow)
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._notifier: Notifier | None = None

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
        # SQLAlchemy's engine, for Alembic only: one connection for this block, then gone.
        engine = create_async_engine(async_url(self.server_url, self.name), poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
                if head is not None and await _is_at_revision(conn, head):
                    return
                await conn.run_sync(_upgrade, migrations_dir)
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def begin(self, *, durable: bool = True) -> AsyncIterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises.

        `durable=False` commits without waiting for the WAL to reach the disk (synchronous_commit
        off, for this transaction only): only for writes that are safe to lose in a server crash
        because they are redone anyway (the outbox relay's "published" marks: a lost mark publishes
        the event again, and consumers drop the repeat). The wait was the relay's longest step
        under load, and every event behind it waited too.
        """
        with tracer().start_as_current_span("db.transaction", kind=SpanKind.CLIENT) as span:
            if span.is_recording():
                span.set_attribute("db.system.name", "postgresql")
                span.set_attribute("db.namespace", self.name)
            async with self._transaction(durable) as conn:
                yield conn

    @asynccontextmanager
    async def _transaction(self, durable: bool) -> AsyncIterator[Connection]:
        async with self.connect() as conn:
            try:
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
            except BaseException:
                conn.notifications.clear()  # rolled back: nothing to tell anyone
                raise

    async def _open_pool(self) -> asyncpg.Pool:
        """The pool, made on first use (it belongs to the event loop that runs the service).

        asyncpg's own pool, not SQLAlchemy's: that one is synchronous code reached through a
        greenlet per checkout and per hand-back, 90 us of CPU for the pair against asyncpg's 45
        (measured here, 5,000 of each), on every unit of work of every service. Connections start
        at none and are opened as needed; one unused for `idle_seconds` is closed by the pool
        (last in, first out, so a light load keeps reusing the same few and the rest fall idle):
        the backends a burst opened go away once the service is quiet instead of holding their
        memory for good (after one benchmark phase, PostgreSQL's share of the platform's idle
        memory went from 115 MB to 584 MB). The server closes a session idle for twice as long,
        in case a client never does.
        """
        async with self._opening:
            if self._pool is None:
                server_idle = {"idle_session_timeout": _millis(2 * self.idle_seconds)}
                self._pool = await asyncpg.create_pool(
                    plain_url(self.server_url, self.name),
                    min_size=0,
                    max_size=self._pool_limit,
                    max_queries=10_000_000,
                    max_inactive_connection_lifetime=max(0.0, self.idle_seconds),
                    init=_set_json_codecs,
                    reset=_keep_session,
                    server_settings=server_idle if self.idle_seconds > 0 else {},
                )
            return self._pool

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        """A pooled connection for the block; each statement commits on its own (see sql.py)."""
        pool = self._pool or await self._open_pool()
        try:
            driver = await pool.acquire(timeout=ACQUIRE_SECONDS)
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(self.name, exc) from exc
        broken = False
        conn = Connection(driver)  # type: ignore[arg-type]  # the pool's proxy of a Connection
        try:
            yield conn
        except (asyncio.CancelledError, asyncpg.InterfaceError, OSError):
            # Cancelled or cut off mid-statement: what the connection is doing is unknown.
            broken = True
            raise
        finally:
            # A connection the server dropped is back in the pool already (asyncpg detached it):
            # asking it anything raises InterfaceError, and handing it back does nothing.
            with contextlib.suppress(asyncpg.InterfaceError):
                if broken or driver.is_in_transaction():
                    driver.terminate()  # closed instead of going back to the pool
                    conn.notifications.clear()  # whether its work committed is unknown
            await pool.release(driver)
            if conn.notifications:
                self.notifier.send(conn.notifications)

    @property
    def notifier(self) -> Notifier:
        """Where the NOTIFYs of committed blocks go (`Connection.notify`), made on first use."""
        if self._notifier is None:
            self._notifier = Notifier(self._send_notifications)
        return self._notifier

    async def _send_notifications(self, batch: Sequence[Notification]) -> None:
        async with self.connect() as conn:
            await conn.execute(
                SEND_STATEMENT, {"channels": [c for c, _ in batch], "payloads": [p for _, p in batch]}
            )

    async def healthy(self) -> bool:
        try:
            async with self.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        if self._notifier is not None:
            notifier, self._notifier = self._notifier, None
            await notifier.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), CLOSE_SECONDS)
            except TimeoutError:
                pool.terminate()


ACQUIRE_SECONDS = 30.0
"""How long a unit of work waits for a connection when all are lent out (then DatabaseUnavailable)."""
CLOSE_SECONDS = 5.0
"""How long `close()` waits for connections still lent out before cutting them off."""


async def _set_json_codecs(conn: asyncpg.Connection) -> None:
    """json and jsonb as SQLAlchemy's asyncpg dialect sets them up: a str in, decoded JSON out, so
    statements written against SQLAlchemy's connection read and write the same values."""
    await conn.set_type_codec(
        "json", encoder=str.encode, decoder=_decode_json, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


def _decode_json(value: bytes) -> Any:
    return json.loads(value)


def _encode_jsonb(value: str) -> bytes:
    return b"\x01" + value.encode()  # jsonb's binary format: a version byte, then the text


def _decode_jsonb(value: bytes) -> Any:
    return json.loads(value[1:])


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection handed back needs beyond asyncpg's own clean-up: nothing.

    asyncpg's default reset (`RESET ALL; UNLISTEN *; CLOSE ALL; ...`) is a round trip on every
    hand-back, for session state these services never set: they LISTEN to nothing and hold no
    advisory or session locks, their settings are `SET LOCAL`, and a connection still in a
    transaction is closed instead of being handed back (`Database.connect`).
    """
