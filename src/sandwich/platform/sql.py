"""Statements on a pooled asyncpg connection, the way the services write them: SQLAlchemy `text()`
with `:named` parameters, `conn.execute(statement, params)`, rows with attribute access.

Why not SQLAlchemy's Connection: the services write every statement by hand, so all they used of
it was parameter naming, the pool and row objects, and it cost about 130 us of CPU per statement on
top of asyncpg's 40 us (measured here: an INSERT in autocommit, 226 us through Connection, 44 us
on the driver), on a hot path of some thirty statements per order. SQLAlchemy still compiles each
`text()` once into asyncpg's `$n` form and runs the migrations (db.py); the pool is asyncpg's, and
the statement runs on the driver connection with asyncpg's own prepared-statement cache.

A connection from `Database.connect()` runs each statement on its own (autocommit: no BEGIN/COMMIT
round trips for a unit of work that is one statement); `Database.begin()` wraps the block in one
transaction. Under READ COMMITTED both see a fresh snapshot per statement, as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from functools import lru_cache
from typing import Any

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from sandwich.platform.pg_notify import Notification
from sandwich.platform.tracing import SpanKind, tracer

_DIALECT = PGDialect_asyncpg()


@lru_cache(maxsize=4096)
def compiled(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with `:name` parameters as asyncpg's `$n` SQL and the parameter names in `$n` order."""
    statement = text(sql).compile(dialect=_DIALECT)
    return statement.string, tuple(statement.positiontup or ())


class Row:
    """One result row: columns as attributes (`row.status`) or by position (`row[0]`)."""

    __slots__ = ("_record",)

    def __init__(self, record: asyncpg.Record):
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, index: int | str) -> Any:
        return self._record[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._record.values())

    def __len__(self) -> int:
        return len(self._record)

    def __repr__(self) -> str:
        return f"Row({dict(self._record.items())!r})"

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(self._record.items())


class NoResultFound(LookupError):
    """`one()` or `scalar_one()` found no row."""


class MultipleResultsFound(LookupError):
    """`one()` or `one_or_none()` found more than one row."""


class Result:
    """The rows of one statement and its row count (rows written, or rows returned by a SELECT)."""

    __slots__ = ("_records", "rowcount")

    def __init__(self, records: Sequence[asyncpg.Record], status: bytes | str | None):
        self._records = records
        self.rowcount = _rowcount(status)

    def all(self) -> list[Row]:
        return [Row(record) for record in self._records]

    def __iter__(self) -> Iterator[Row]:
        return iter(self.all())

    def first(self) -> Row | None:
        return Row(self._records[0]) if self._records else None

    def one_or_none(self) -> Row | None:
        if len(self._records) > 1:
            raise MultipleResultsFound("expected at most one row")
        return self.first()

    def one(self) -> Row:
        row = self.one_or_none()
        if row is None:
            raise NoResultFound("expected one row")
        return row

    def scalar(self) -> Any:
        return self._records[0][0] if self._records else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return row[0] if row is not None else None

    def scalars(self) -> Scalars:
        return Scalars(record[0] for record in self._records)


class Scalars(list[Any]):
    """The first column of every row (a list; `.all()` as SQLAlchemy spells it)."""

    def all(self) -> list[Any]:
        return list(self)


def _rowcount(status: bytes | str | None) -> int:
    """Rows affected from a command tag (`INSERT 0 3`, `UPDATE 1`, `SELECT 5`); -1 when it names none."""
    if not status:
        return -1
    tail = (status.decode() if isinstance(status, bytes) else status).rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else -1


class Connection:
    """One pooled driver connection, lent for a block by `Database.connect()` or `Database.begin()`."""

    __slots__ = ("driver", "notifications")

    def __init__(self, driver: asyncpg.Connection):
        self.driver = driver
        self.notifications: list[Notification] = []

    def notify(self, channel: str, payload: str = "") -> None:
        """NOTIFY `channel` once the block's work has committed, outside its transaction (see
        pg_notify.py for why not `pg_notify()` in it); nothing is sent for a block that raised."""
        self.notifications.append((channel, payload))

    async def execute(self, statement: TextClause | str, params: Mapping[str, Any] | None = None) -> Result:
        sql, names = compiled(statement.text if isinstance(statement, TextClause) else statement)
        args = [params[name] for name in names] if params is not None else []
        if len(args) != len(names):
            raise KeyError(f"missing parameters {sorted(set(names) - set(params or ()))}")
        # asyncpg's public fetch() drops the command tag and execute() drops the rows; a write's row
        # count (ON CONFLICT DO NOTHING, a conditional UPDATE) needs both, from the one call that has
        # them (asyncpg is pinned; tests/integration/platform/test_sql.py checks it).
        if self.driver.is_in_transaction():  # Database.begin's block: its span covers it
            records, status, _ = await self.driver._execute(sql, args, 0, None, return_status=True)
            return Result(records, status)
        # A statement on its own commits on its own: it is a transaction, and gets its span.
        with tracer().start_as_current_span("db.transaction", kind=SpanKind.CLIENT) as span:
            if span.is_recording():
                span.set_attribute("db.system.name", "postgresql")
                span.set_attribute("db.operation.name", sql.lstrip().split(None, 1)[0].upper())
            records, status, _ = await self.driver._execute(sql, args, 0, None, return_status=True)
            return Result(records, status)

    def begin_nested(self) -> AbstractAsyncContextManager[Any]:
        """A savepoint inside the block's transaction (rolled back alone if its block raises)."""
        return self.driver.transaction()
