"""NOTIFYs after the commit (platform/pg_notify.py, `Connection.notify`) against a real PostgreSQL:
sent once the block committed, never for a block that raised, folded and in order, by a transaction
that does not wait for the disk, and not lost when the connection that sent the last one is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from sandwich.platform.db import Database, plain_url
from sandwich.platform.pg_notify import SEND_STATEMENT
from tests.integration.scratch import scratch_database

pytestmark = pytest.mark.integration

CHANNEL = "test_channel"


class Heard:
    """A LISTEN connection's notifications on CHANNEL, with the backend pid that sent each."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()

    def on_notify(self, _conn: object, pid: int, _channel: str, payload: str) -> None:
        self.queue.put_nowait((pid, payload))

    async def next(self, timeout: float = 5.0) -> tuple[int, str]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def nothing_more(self, within: float = 0.5) -> bool:
        await asyncio.sleep(within)
        return self.queue.empty()


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with scratch_database("notify", pool_size=2, max_overflow=0) as database:
        async with database.begin() as conn:
            await conn.execute(text("CREATE TABLE things (id int PRIMARY KEY)"))
        yield database


@pytest.fixture
async def heard(db: Database) -> AsyncIterator[Heard]:
    listener = await asyncpg.connect(plain_url(db.server_url, db.name))
    heard = Heard()
    await listener.add_listener(CHANNEL, heard.on_notify)
    try:
        yield heard
    finally:
        await listener.close()


async def test_a_block_notifies_once_committed_and_never_when_rolled_back(db: Database, heard: Heard) -> None:
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO things VALUES (1)"))
        conn.notify(CHANNEL, "committed")
        assert await heard.nothing_more(0.3)  # not while the transaction is open
    assert (await heard.next())[1] == "committed"

    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO things VALUES (2)"))
            conn.notify(CHANNEL, "rolled back")
            raise RuntimeError("the block fails")
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM things"))).scalar_one() == 1
        conn.notify(CHANNEL, "autocommit")
    assert (await heard.next())[1] == "autocommit"
    assert await heard.nothing_more()


async def test_equal_notifications_waiting_together_go_once_and_in_order(db: Database, heard: Heard) -> None:
    db.notifier.send([(CHANNEL, "a"), (CHANNEL, "b"), (CHANNEL, "a"), (CHANNEL, "c")])
    assert [(await heard.next())[1] for _ in range(3)] == ["a", "b", "c"]
    assert await heard.nothing_more()


async def test_a_lost_connection_loses_no_notification_and_close_sends_what_waits(
    db: Database, heard: Heard
) -> None:
    notifier = db.notifier
    notifier.send([(CHANNEL, "first")])
    sender_pid, payload = await heard.next()
    assert payload == "first"
    admin = await asyncpg.connect(plain_url(db.server_url, "postgres"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", sender_pid)
    finally:
        await admin.close()
    notifier.send([(CHANNEL, "after the loss")])
    other_pid, payload = await heard.next()
    assert payload == "after the loss" and other_pid != sender_pid
    notifier.send([(CHANNEL, "at close")])
    await notifier.close()
    assert (await heard.next())[1] == "at close"
    assert notifier.waiting == 0


async def test_the_notifying_transaction_does_not_wait_for_the_disk(db: Database) -> None:
    """What keeps the server-wide NOTIFY lock short: the batch's transaction commits with
    synchronous_commit off (set for that transaction alone, in autocommit)."""
    async with db.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT current_setting('synchronous_commit') FROM "
                    "(SELECT set_config('synchronous_commit', 'off', true)) AS s) AS inside"
                )
            )
        ).one()
        after = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
    assert (row.inside, after) == ("off", "on")
    assert "set_config('synchronous_commit', 'off', true)" in str(SEND_STATEMENT)
