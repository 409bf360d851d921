"""The platform's unit of work on a real PostgreSQL: a committed block keeps its change and its
events and announces them once, after the commit; a block that raises or ends without a commit
keeps nothing and announces nothing; a joined unit leaves the commit to the transaction's owner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import text

from sandwich.platform.db import Database
from sandwich.platform.events import Envelope
from sandwich.platform.outbox import Committed, Event
from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import SqlUnitOfWork
from tests.integration.scratch import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Notes:
    """A one-table repository, the smallest a unit of work can carry."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def add(self, note: str) -> None:
        await self.conn.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": note})


class NotesUnitOfWork(SqlUnitOfWork):
    notes: Notes

    def open_repositories(self, conn: Connection) -> None:
        self.notes = Notes(conn)


class Announcements:
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def __call__(self, key: str, rows: Sequence[Committed]) -> None:
        self.keys.append(key)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with scratch_database("uow") as database:
        async with database.connect() as conn:
            await conn.execute(text("CREATE TABLE notes (body TEXT NOT NULL)"))
            await conn.execute(
                text(
                    "CREATE TABLE outbox (id BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL UNIQUE, "
                    "topic TEXT NOT NULL, key TEXT NOT NULL, envelope BYTEA NOT NULL, kind TEXT, "
                    "created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), published_at TIMESTAMPTZ, "
                    "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)"
                )
            )
        yield database


def event(key: str) -> Event:
    return Event("notes", Envelope(type="note.added", producer="test", key=key, payload={}))


async def counts(db: Database) -> tuple[int, int]:
    async with db.connect() as conn:
        notes = (await conn.execute(text("SELECT count(*) FROM notes"))).scalar_one()
        events = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
    return notes, events


async def test_a_committed_block_keeps_its_change_and_events_and_announces_each_key_once(
    db: Database,
) -> None:
    announced = Announcements()
    uow = NotesUnitOfWork(db, announced)
    async with uow:
        await uow.notes.add("first")
        uow.events.record(event("a"), event("b"), event("a"))
        assert announced.keys == []  # nothing is announced before the commit
        await uow.commit()
    assert await counts(db) == (1, 3)
    assert announced.keys == ["a", "b"]


async def test_a_block_that_raises_keeps_nothing_and_announces_nothing(db: Database) -> None:
    announced = Announcements()
    uow = NotesUnitOfWork(db, announced)
    with pytest.raises(LookupError):
        async with uow:
            await uow.notes.add("lost")
            uow.events.record(event("a"))
            raise LookupError("the use case refused")
    assert await counts(db) == (0, 0)
    assert announced.keys == []


async def test_a_block_without_a_commit_is_rolled_back(db: Database) -> None:
    uow = NotesUnitOfWork(db, Announcements())
    async with uow:
        await uow.notes.add("forgotten")
    assert await counts(db) == (0, 0)
    async with uow:  # the same unit may be entered again, afresh
        await uow.notes.add("kept")
        await uow.commit()
    assert await counts(db) == (1, 0)


async def test_events_outside_a_transaction_must_go_with_the_change(db: Database) -> None:
    uow = NotesUnitOfWork(db, Announcements(), atomic=False)
    async with uow:
        uow.events.record(event("a"))
        with pytest.raises(RuntimeError, match="change's statement"):
            await uow.commit()


async def test_a_joined_unit_leaves_the_commit_to_the_owner(db: Database) -> None:
    announced = Announcements()
    with pytest.raises(LookupError):
        async with db.begin() as conn:
            async with NotesUnitOfWork.joining(conn, db) as uow:
                await uow.notes.add("inside")
                uow.events.record(event("a"))
                await uow.commit()
            assert await counts(db) == (0, 0)  # not committed yet: the owner's transaction is open
            raise LookupError("the owner rolls back")
    assert await counts(db) == (0, 0)
    assert announced.keys == []
    async with db.begin() as conn:
        async with NotesUnitOfWork.joining(conn, db) as uow:
            await uow.notes.add("inside")
            uow.events.record(event("a"))
            await uow.commit()
    assert await counts(db) == (1, 1)
