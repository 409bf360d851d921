"""The platform's statement layer (platform/sql.py) against a real PostgreSQL: parameters, row counts,
rows, transactions and savepoints, and what happens to a connection a statement was cut off on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from sandwich.platform.db import Database, plain_url
from sandwich.platform.sql import MultipleResultsFound, NoResultFound, compiled
from tests.integration.scratch import scratch_database, server_url

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with scratch_database("sql", pool_size=2, max_overflow=0) as database:
        async with database.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE items (id uuid PRIMARY KEY, name text NOT NULL, qty int, doc jsonb, items text)"
                )
            )
        yield database


@pytest.fixture(autouse=True)
async def empty(db: Database) -> None:
    async with db.connect() as conn:
        await conn.execute(text("TRUNCATE items"))


INSERT = text(
    "INSERT INTO items (id, name, qty, doc, items) VALUES (:id, :name, :qty, CAST(:doc AS jsonb), :items) "
    "ON CONFLICT DO NOTHING"
)


def test_named_parameters_become_numbered_once_each_and_casts_survive() -> None:
    sql, names = compiled("SELECT CAST(:a AS text), :b, :a, x::text, ':' || 'x:y' FROM t WHERE c = :b")
    assert names == ("a", "b")
    assert sql == "SELECT CAST($1 AS text), $2, $1, x::text, ':' || 'x:y' FROM t WHERE c = $2"


async def test_row_counts_of_writes_and_reads(db: Database) -> None:
    first = uuid.uuid4()
    async with db.connect() as conn:
        inserted = await conn.execute(
            INSERT, {"id": first, "name": "a", "qty": 1, "doc": '{"k": 1}', "items": "x"}
        )
        repeated = await conn.execute(
            INSERT, {"id": first, "name": "a", "qty": 1, "doc": '{"k": 1}', "items": "x"}
        )
        await conn.execute(INSERT, {"id": uuid.uuid4(), "name": "b", "qty": 2, "doc": "[]", "items": None})
        updated = await conn.execute(text("UPDATE items SET qty = qty + 1 WHERE qty >= :q"), {"q": 1})
        selected = await conn.execute(text("SELECT id FROM items"))
    assert (inserted.rowcount, repeated.rowcount, updated.rowcount, selected.rowcount) == (1, 0, 2, 2)


async def test_rows_answer_by_attribute_and_position_and_decode_json(db: Database) -> None:
    item = uuid.uuid4()
    async with db.connect() as conn:
        await conn.execute(
            INSERT, {"id": item, "name": "a", "qty": 3, "doc": '{"k": [1, 2]}', "items": "col"}
        )
        row = (
            await conn.execute(
                text("SELECT id, name, qty, doc, items FROM items WHERE id = :id"), {"id": item}
            )
        ).one()
        names = (await conn.execute(text("SELECT name FROM items"))).scalars().all()
        missing = (
            await conn.execute(text("SELECT name FROM items WHERE id = :id"), {"id": uuid.uuid4()})
        ).one_or_none()
    # `items` is a column here, not Record.items(): attribute access always means the column.
    assert (row.id, row.name, row.qty, row.doc, row.items) == (item, "a", 3, {"k": [1, 2]}, "col")
    assert (row[1], row["qty"], len(row), list(row)[1]) == ("a", 3, 5, "a")
    assert names == ["a"] and missing is None
    with pytest.raises(AttributeError):
        _ = row.no_such_column


async def test_one_and_scalar_one_insist_on_exactly_one_row(db: Database) -> None:
    async with db.connect() as conn:
        for name in ("a", "b"):
            await conn.execute(
                INSERT, {"id": uuid.uuid4(), "name": name, "qty": 1, "doc": "{}", "items": None}
            )
        every = await conn.execute(text("SELECT name FROM items ORDER BY name"))
        none = await conn.execute(text("SELECT name FROM items WHERE false"))
    with pytest.raises(MultipleResultsFound):
        every.one()
    with pytest.raises(NoResultFound):
        none.scalar_one()
    assert every.first() is not None and every.scalar() == "a" and none.scalar() is None


async def test_a_missing_parameter_is_refused_before_the_server_is_asked(db: Database) -> None:
    async with db.connect() as conn:
        with pytest.raises(KeyError):
            await conn.execute(INSERT, {"id": uuid.uuid4(), "name": "a"})


async def test_begin_commits_or_rolls_back_the_whole_block(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(INSERT, {"id": uuid.uuid4(), "name": "kept", "qty": 1, "doc": "{}", "items": None})
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await conn.execute(
                INSERT, {"id": uuid.uuid4(), "name": "gone", "qty": 1, "doc": "{}", "items": None}
            )
            raise RuntimeError("the block fails after its write")
    async with db.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM items"))).scalars().all()
    assert names == ["kept"]


async def test_a_savepoint_rolls_back_alone(db: Database) -> None:
    taken = uuid.uuid4()
    async with db.begin() as conn:
        await conn.execute(
            INSERT.text.replace(" ON CONFLICT DO NOTHING", ""),
            {"id": taken, "name": "a", "qty": 1, "doc": "{}", "items": None},
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.begin_nested():
                await conn.execute(
                    INSERT.text.replace(" ON CONFLICT DO NOTHING", ""),
                    {"id": taken, "name": "again", "qty": 1, "doc": "{}", "items": None},
                )
        await conn.execute(INSERT, {"id": uuid.uuid4(), "name": "b", "qty": 1, "doc": "{}", "items": None})
    async with db.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM items ORDER BY name"))).scalars().all()
    assert names == ["a", "b"]


async def test_a_refused_statement_leaves_the_connection_usable(db: Database) -> None:
    with pytest.raises(asyncpg.PostgresError):
        async with db.connect() as conn:
            await conn.execute(text("SELECT 1 / 0"))
    for _ in range(3):  # the pool has two connections: every one of them still works
        async with db.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


async def test_a_statement_cancelled_midway_does_not_poison_the_pool(db: Database) -> None:
    async def slow() -> None:
        async with db.begin() as conn:
            await conn.execute(text("SELECT pg_sleep(5)"))

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(4):
        async with db.begin() as conn:
            assert (await conn.execute(text("SELECT 2"))).scalar_one() == 2


async def test_a_transaction_that_need_not_wait_for_the_disk_commits_and_rolls_back_like_any(
    db: Database,
) -> None:
    async with db.connect() as conn:
        before = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
    async with db.begin(durable=False) as conn:
        setting = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
        await conn.execute(INSERT, {"id": uuid.uuid4(), "name": "kept", "qty": 1, "doc": "{}", "items": None})
    with pytest.raises(RuntimeError):
        async with db.begin(durable=False) as conn:
            await conn.execute(
                INSERT, {"id": uuid.uuid4(), "name": "gone", "qty": 1, "doc": "{}", "items": None}
            )
            raise RuntimeError("the block fails after its write")
    async with db.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM items"))).scalars().all()
        after = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
    assert setting == "off" and after == before  # for that transaction only
    assert names == ["kept"]


async def _sessions_of(database: str) -> int:
    admin = await asyncpg.connect(plain_url(server_url(), "postgres"))
    try:
        count = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database)
        return int(count)
    finally:
        await admin.close()


async def test_connections_a_burst_opened_are_closed_once_idle_and_the_pool_carries_on() -> None:
    async with scratch_database("sqltest", idle_seconds=1.0, pool_size=8, max_overflow=0) as idle_db:

        async def hold() -> None:
            async with idle_db.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(0.2)"))

        await asyncio.gather(*(hold() for _ in range(6)))
        during = await _sessions_of(idle_db.name)
        await asyncio.sleep(1.6)
        after = await _sessions_of(idle_db.name)
        for _ in range(8):  # every pooled connection is dead by now: each is replaced, none fails
            async with idle_db.connect() as conn:
                assert (await conn.execute(text("SELECT 3"))).scalar_one() == 3
        again = await _sessions_of(idle_db.name)
    assert during == 6
    assert after == 0
    assert again == 1  # last in, first out: one connection served the eight blocks one by one


async def test_a_block_that_leaves_a_transaction_open_does_not_hand_it_to_the_next_one(db: Database) -> None:
    async with db.connect() as conn:
        await conn.driver.execute("BEGIN")
        await conn.execute(
            INSERT, {"id": uuid.uuid4(), "name": "never", "qty": 1, "doc": "{}", "items": None}
        )
    for _ in range(3):  # the pool has two connections: none of them is still inside that transaction
        async with db.connect() as conn:
            assert not conn.driver.is_in_transaction()
            assert (await conn.execute(text("SELECT count(*) FROM items"))).scalar_one() == 0


async def test_connections_the_server_closed_are_replaced_without_an_error(db: Database) -> None:
    async def hold() -> None:
        async with db.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.1)"))

    await asyncio.gather(hold(), hold())  # both pooled connections open
    admin = await asyncpg.connect(plain_url(server_url(), "postgres"))
    try:
        closed = await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
            db.name,
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.5)  # the client hears of it (the server says so, then closes the socket)
    for _ in range(3):
        async with db.connect() as conn:
            assert (await conn.execute(text("SELECT 4"))).scalar_one() == 4
    assert closed == 2
