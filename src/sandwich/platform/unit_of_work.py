"""The unit of work: begin -> change -> record events -> commit -> announce, written once.

A use case takes its command and a unit of work, and never a connection or the platform: it reads
and changes through the unit's repositories, records the events its change makes, and commits.
The unit makes those events leave with the change or not at all (the outbox rows are written in the
change's transaction, often in the change's own statement), and announces them once committed (the
relay publishes them; in `sync` they are pushed to their consumers now: `Service.announce_committed`).
Each service's unit adds its repositories (`open_repositories`); its tests use an in-memory fake of
the same shape, so use cases are tested without a database (cosmicpython's `AbstractUnitOfWork`).

Three ways to hold the connection, chosen by the caller who knows the statements:

- `SqlUnitOfWork(...)` wraps the block in BEGIN ... COMMIT;
- `SqlUnitOfWork(..., atomic=False)` runs each statement on its own: for use cases whose every
  write is one statement that carries its own events (`RecordedEvents.take` in the repository),
  which spares BEGIN and COMMIT, two of a payment's three round trips;
- `SqlUnitOfWork.joining(conn, ...)` works inside a transaction someone else owns (a consumer's
  inbox claim): that owner commits and wakes the relay, so the unit neither commits nor announces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol, Self

from sandwich.platform.db import Database
from sandwich.platform.outbox import Committed, Event, add_events
from sandwich.platform.sql import Connection

Announce = Callable[[str, Sequence[Committed]], Awaitable[None]]
"""After a commit: hand the events of one key on (`Service.announce_committed`)."""


class RecordedEvents:
    """The events a unit of work's change makes, until they are written and then announced."""

    def __init__(self) -> None:
        self._pending: list[Event] = []
        self._written: list[Event] = []
        self._rows: list[Committed] = []

    def record(self, *events: Event) -> None:
        self._pending.extend(events)

    def take(self) -> list[Event]:
        """The events not yet written, for a repository that writes them with its change in one
        statement; it reports the rows back with `written`."""
        taken, self._pending = self._pending, []
        return taken

    def written(self, events: Sequence[Event], rows: Sequence[Committed] = ()) -> None:
        """`events` are in the outbox now (`rows`: their outbox rows, when the statement said)."""
        self._written.extend(events)
        self._rows.extend(rows)

    @property
    def pending(self) -> list[Event]:
        return list(self._pending)

    @property
    def in_outbox(self) -> list[Event]:
        """The events written so far, in order."""
        return list(self._written)

    def keys(self) -> list[str]:
        """The keys of the written events, each once, in the order they were written."""
        return list(dict.fromkeys(event.envelope.key for event in self._written))

    def rows_of(self, key: str) -> list[Committed]:
        return [row for row in self._rows if row.event.envelope.key == key]


class UnitOfWork(Protocol):
    """What a use case sees of its unit of work, besides its service's repositories."""

    events: RecordedEvents

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...

    def statements(self) -> Self: ...


class _RolledBack(Exception):
    """Thrown into the transaction's block when the unit ends without a commit."""


class SqlUnitOfWork:
    """The PostgreSQL unit of work; a service's subclass opens its repositories on the connection.

    One instance may be entered again after it ended (`async with uow:` once per step of a use
    case): each entry is a fresh connection and transaction, and events start empty.
    """

    def __init__(self, database: Database | None, announce: Announce | None, *, atomic: bool = True):
        self._database = database
        self._announce = announce
        self._atomic = atomic
        self._joined: Connection | None = None
        self._scope: AbstractAsyncContextManager[Connection] | None = None
        self.connection: Connection | None = None
        self.events = RecordedEvents()

    @classmethod
    def joining(
        cls, conn: Connection, database: Database | None = None, *args: object, **kwargs: object
    ) -> Self:
        """A unit inside the caller's transaction on `conn` (a consumer's inbox claim); it opens no
        connection of its own, so it needs no database."""
        uow = cls(database, None, *args, **kwargs)  # type: ignore[arg-type]
        uow._joined = conn
        return uow

    def statements(self) -> Self:
        """The same unit with each statement on its own (`atomic=False`), for a step whose every
        write is one statement carrying its events: a fresh unit, sharing nothing with this one."""
        return type(self)(self._database, self._announce, atomic=False)

    def open_repositories(self, conn: Connection) -> None:
        """Make the service's repositories on `conn` (a subclass's)."""

    async def __aenter__(self) -> Self:
        self.events = RecordedEvents()
        if self._joined is not None:
            self.connection = self._joined
        else:
            if self._database is None:
                raise RuntimeError("a unit of work that joined a transaction cannot open one")
            self._scope = self._database.begin() if self._atomic else self._database.connect()
            self.connection = await self._scope.__aenter__()
        self.open_repositories(self.connection)
        return self

    async def commit(self) -> None:
        """Write the events still pending, commit, then announce what was written."""
        pending = self.events.take()
        if pending:
            if not self._atomic and self._joined is None:
                raise RuntimeError(
                    "events recorded outside a transaction must go with the change's statement"
                )
            assert self.connection is not None
            await add_events(self.connection, pending)
            self.events.written(pending)
        if self._joined is not None:
            return  # the owner of the transaction commits and wakes the relay
        await self._close(None)
        if self._announce is not None:
            for key in self.events.keys():
                await self._announce(key, self.events.rows_of(key))

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._scope is None:
            return
        if error is None and (self._atomic or self.events.pending):
            error = _RolledBack()  # ended without a commit: nothing it did stays
        await self._close(error)

    async def _close(self, error: BaseException | None) -> None:
        scope, self._scope = self._scope, None
        if scope is None:
            return
        if error is None:
            await scope.__aexit__(None, None, None)
            return
        try:
            await scope.__aexit__(type(error), error, error.__traceback__)
        except _RolledBack:
            pass
