"""order_info's read model against a real PostgreSQL: the same events in any order and any number of
times give the same views and histories, `replay` rebuilds exactly that model (also from a real
broker, wired as `sandwich replay order_info` wires it), and the live status stream (LISTEN/NOTIFY
and the Server-Sent Events body) follows the changes as they are applied.

The server is $DATABASE_URL or the session's embedded one (tests/engines.py); every database made
here has a prefix of this session's own, and is dropped at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import sandwich.services.order_info as order_info_package
from sandwich.cli.replay import replay_order_info
from sandwich.platform.bus.base import Message
from sandwich.platform.bus.nats import NatsBus
from sandwich.platform.db import Database, plain_url
from sandwich.platform.embedded.brokers import EmbeddedNats
from sandwich.platform.events import ORDER_EVENT, TOPIC_ORDER_EVENTS, Envelope, OrderEvent
from sandwich.platform.inbox import OneStatement, idempotent_consumer
from sandwich.platform.settings import Flow, Settings
from sandwich.services.order_info.domain import OrderUpdate, public_history, public_order
from sandwich.services.order_info.handlers import CONSUMER, order_event_effect
from sandwich.services.order_info.live import KEEP_ALIVE, LiveOrders, StatusChange, status_events
from sandwich.services.order_info.replay import (
    ReplayReport,
    ReplayWouldLoseOrders,
    envelopes_of,
    rebuild,
)
from sandwich.services.order_info.storage import PostgresOrderViews
from sandwich.services.order_info.unit_of_work import SqlOrderInfoUnitOfWork
from tests.integration.scratch import server_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MIGRATIONS = Path(order_info_package.__file__).parent / "migrations"
SESSION_PREFIX = f"it_{uuid.uuid4().hex[:10]}"

ALICE = "7f6a3c1e-0000-4000-8000-0000000000a1"
BOB = "7f6a3c1e-0000-4000-8000-0000000000b2"
FOOD_POINT = "7f6a3c1e-0000-4000-8000-0000000000f1"
LIFECYCLES = {
    # order -> (owner, statuses in version order)
    "7f6a3c1e-0000-4000-8000-000000000001": (
        ALICE,
        ["created", "paid", "assigned", "ready", "in_delivery", "completed"],
    ),
    "7f6a3c1e-0000-4000-8000-000000000002": (ALICE, ["created", "payment_failed"]),
    "7f6a3c1e-0000-4000-8000-000000000003": (BOB, ["created", "paid", "cancelled"]),
    "7f6a3c1e-0000-4000-8000-000000000004": (BOB, ["created", "paid", "assigned"]),
}


# --- databases -----------------------------------------------------------------------------------


class Databases:
    """Fresh, migrated order_info databases on the test server, all dropped at the end."""

    def __init__(self) -> None:
        self.made: list[Database] = []

    def settings(self, name: str) -> Settings:
        return Settings(
            service="order_info",
            flow=Flow.HYBRID,
            database_url=server_url(),
            db_prefix=f"{SESSION_PREFIX}_{name}",
            log_level="warning",
            # They live until the session ends: their idle connections must not (the test server
            # allows 100, and a dozen databases kept theirs for a minute each).
            db_idle_seconds=1.0,
        )

    async def fresh(self, name: str | None = None) -> Database:
        db = Database(self.settings(name or uuid.uuid4().hex[:8]), "order_info")
        self.made.append(db)
        await db.prepare(MIGRATIONS)
        return db

    async def drop_all(self) -> None:
        names = {db.name for db in self.made}
        for db in self.made:
            await db.close()
        admin = await asyncpg.connect(plain_url(server_url(), make_url(server_url()).database or "postgres"))
        try:
            rows = await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{SESSION_PREFIX}%"
            )
            for name in names | {row["datname"] for row in rows}:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def databases() -> AsyncIterator[Databases]:
    made = Databases()
    try:
        yield made
    finally:
        await made.drop_all()


# --- the event stream ----------------------------------------------------------------------------


def at(order_index: int, version: int) -> str:
    return f"2026-03-0{order_index + 1}T10:{version:02d}:00Z"


def order_envelope(order_id: str, version: int, *, event_id: str | None = None) -> Envelope:
    owner, statuses = LIFECYCLES[order_id]
    index = list(LIFECYCLES).index(order_id)
    status = statuses[version - 1]
    reached = set(statuses[:version])
    order = {
        "order_id": order_id,
        "user_id": owner,
        "username": "alice" if owner == ALICE else "bob",
        "status": status,
        "items": [{"menu_item_id": "m1", "name": "Club", "quantity": 2, "price": 45_000}],
        "total": 90_000,
        "delivery": {"address": "Main st 1", "lat": 55.75, "lon": 37.61},
        "food_point_id": FOOD_POINT if "assigned" in reached else None,
        "courier": "carl" if "in_delivery" in reached else None,
        "payment_operation_id": f"op-{index}" if "paid" in reached else None,
        "created_at": at(index, 1),
        "updated_at": at(index, version),
    }
    event = OrderEvent.model_validate(
        {
            "status": status,
            "previous_status": statuses[version - 2] if version > 1 else None,
            "at": at(index, version),
            "order": order,
        }
    )
    envelope = Envelope(
        type=ORDER_EVENT, producer="orders", key=order_id, version=version, payload=event.model_dump()
    )
    if event_id is not None:
        envelope = envelope.model_copy(update={"event_id": event_id})
    return envelope


@pytest.fixture(scope="module")
def in_order() -> list[Envelope]:
    """Every order's events in version order, the orders interleaved as a broker would deliver them."""
    per_order = [
        [order_envelope(order_id, version) for version in range(1, len(statuses) + 1)]
        for order_id, (_, statuses) in LIFECYCLES.items()
    ]
    stream: list[Envelope] = []
    for step in range(max(len(events) for events in per_order)):
        stream += [events[step] for events in per_order if step < len(events)]
    return stream


def duplicated_and_shuffled(stream: list[Envelope], seed: int) -> list[Envelope]:
    """Every event twice (a redelivery: same event id), some a third time under a new id (the same
    change sent again), all in a random order."""
    rng = random.Random(seed)
    copies = [*stream, *stream]
    copies += [
        e.model_copy(update={"event_id": str(uuid.uuid4())}) for e in rng.sample(stream, len(stream) // 3)
    ]
    rng.shuffle(copies)
    return copies


def message(envelope: Envelope) -> Message:
    return Message(topic=TOPIC_ORDER_EVENTS, key=envelope.key, value=envelope.to_bytes())


async def consume(db: Database, stream: Iterable[Envelope], *, concurrency: int = 1) -> None:
    """Through the live consumer's own handler (inbox claim and effect in one statement), `concurrency`
    at a time."""
    handler = idempotent_consumer(db, "order_info", CONSUMER, OneStatement(order_event_effect))
    gate = asyncio.Semaphore(concurrency)

    async def one(envelope: Envelope) -> None:
        async with gate:
            await handler(message(envelope))

    await asyncio.gather(*(one(envelope) for envelope in stream))


async def iterate(stream: Iterable[Envelope]) -> AsyncIterator[Envelope]:
    for envelope in stream:
        yield envelope


async def replay(db: Database, stream: Iterable[Envelope], **options: Any) -> ReplayReport:
    async with db.begin() as conn:
        return await rebuild(conn, iterate(stream), **options)


@dataclass(frozen=True)
class Model:
    views: list[tuple[Any, ...]]
    history: list[tuple[Any, ...]]
    answers: dict[str, Any]  # what GET /api/v1/orders and GET /api/v1/orders/{id} answer


async def model(db: Database) -> Model:
    async with db.connect() as conn:
        views = (
            await conn.execute(
                text(
                    "SELECT order_id, user_id, username, status, version, snapshot, created_at, updated_at "
                    "FROM order_views ORDER BY order_id"
                )
            )
        ).all()
        history = (
            await conn.execute(text("SELECT order_id, version, status, at FROM order_history ORDER BY 1, 2"))
        ).all()
        answers: dict[str, Any] = {}
        for user in (ALICE, BOB):
            answers[user] = [
                public_order(s) for s in await PostgresOrderViews(conn).of_user(uuid.UUID(user), 50)
            ]
        for order_id in LIFECYCLES:
            found = await PostgresOrderViews(conn).view(uuid.UUID(order_id))
            entries = await PostgresOrderViews(conn).history(uuid.UUID(order_id))
            answers[order_id] = found and {**public_order(found[1]), "history": public_history(entries)}
    return Model([tuple(row) for row in views], [tuple(row) for row in history], answers)


async def inbox_ids(db: Database) -> set[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id::text FROM inbox WHERE consumer = :c"), {"c": CONSUMER}
        )
        return {row[0] for row in rows}


@pytest.fixture(scope="module")
async def reference(databases: Databases, in_order: list[Envelope]) -> tuple[Database, Model]:
    """The model the live consumer builds from the stream as the broker delivers it."""
    db = await databases.fresh("reference")
    await consume(db, in_order)
    return db, await model(db)


# --- the read model converges --------------------------------------------------------------------


async def test_the_in_order_stream_builds_every_order_with_its_history(
    reference: tuple[Database, Model],
) -> None:
    _, built = reference
    first = built.answers["7f6a3c1e-0000-4000-8000-000000000001"]
    assert first["status"] == "completed"
    assert [entry["status"] for entry in first["history"]] == LIFECYCLES[
        "7f6a3c1e-0000-4000-8000-000000000001"
    ][1]
    assert first["courier"] == "carl" and first["food_point_id"] == FOOD_POINT
    assert [o["order_id"] for o in built.answers[ALICE]] == [
        "7f6a3c1e-0000-4000-8000-000000000002",  # newest first
        "7f6a3c1e-0000-4000-8000-000000000001",
    ]
    assert [(view[3], view[4]) for view in built.views] == [
        ("completed", 6),
        ("payment_failed", 2),
        ("cancelled", 3),
        ("assigned", 3),
    ]
    assert len(built.history) == sum(len(statuses) for _, statuses in LIFECYCLES.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_duplicated_and_reordered_stream_gives_the_same_model(
    databases: Databases, in_order: list[Envelope], reference: tuple[Database, Model], seed: int
) -> None:
    db = await databases.fresh()
    # Several at a time too: two instances of the consumer racing on one order must not matter.
    await consume(db, duplicated_and_shuffled(in_order, seed), concurrency=1 if seed == 1 else 8)
    assert await model(db) == reference[1]


async def test_replay_rebuilds_the_same_model_over_an_existing_one_and_into_a_fresh_one(
    databases: Databases, in_order: list[Envelope], reference: tuple[Database, Model]
) -> None:
    ref_db, expected = reference
    scrambled = duplicated_and_shuffled(in_order, 7)
    resent = len(scrambled) - 2 * len(in_order)

    # Over the model the live consumer built (what `sandwich replay` does on a running platform).
    db = await databases.fresh()
    await consume(db, in_order)
    report = await replay(db, scrambled)
    assert await model(db) == expected
    distinct = {e.event_id for e in scrambled}
    assert await inbox_ids(db) == distinct
    assert (report.events, report.applied, report.duplicates) == (
        len(scrambled),
        len(distinct),
        len(in_order),
    )
    assert (report.orders_before, report.orders, report.invalid, report.ignored) == (4, 4, 0, 0)
    assert len(distinct) == len(in_order) + resent

    # Into a fresh database, from the stream as delivered.
    fresh = await databases.fresh()
    report = await replay(fresh, in_order)
    assert await model(fresh) == expected
    assert (report.orders_before, report.orders, report.applied) == (0, 4, len(in_order))

    # Replaying twice changes nothing, and the live consumer finds every event already applied.
    await replay(fresh, in_order)
    await consume(fresh, scrambled)
    assert await model(fresh) == expected
    assert await model(ref_db) == expected


async def test_a_replay_that_would_lose_orders_is_rolled_back_unless_forced(
    databases: Databases, in_order: list[Envelope], reference: tuple[Database, Model]
) -> None:
    db = await databases.fresh()
    await consume(db, in_order)
    # The broker no longer retains the first order's events (they aged out).
    partial = [e for e in in_order if e.key != "7f6a3c1e-0000-4000-8000-000000000001"]
    with pytest.raises(ReplayWouldLoseOrders) as raised:
        await replay(db, partial)
    assert (raised.value.report.orders_before, raised.value.report.orders) == (4, 3)
    assert await model(db) == reference[1], "the failed replay changed nothing"
    assert len(await inbox_ids(db)) == len(in_order)

    report = await replay(db, partial, allow_fewer_orders=True)
    assert report.orders == 3
    assert (await model(db)).answers["7f6a3c1e-0000-4000-8000-000000000001"] is None


async def test_replay_skips_what_the_live_consumer_could_not_apply_either(
    databases: Databases, in_order: list[Envelope], reference: tuple[Database, Model]
) -> None:
    db = await databases.fresh()
    broken = order_envelope("7f6a3c1e-0000-4000-8000-000000000001", 2)
    broken = broken.model_copy(update={"event_id": str(uuid.uuid4()), "payload": {"status": "paid"}})
    bad_id = order_envelope("7f6a3c1e-0000-4000-8000-000000000001", 3).model_copy(update={"event_id": "nope"})
    other = Envelope(type="UserCreated", producer="users", key=ALICE, payload={"user_id": ALICE})
    messages = [message(e) for e in [*in_order, broken, bad_id, other]] + [
        Message(topic=TOPIC_ORDER_EVENTS, key="x", value=b"not json")
    ]
    report = ReplayReport()

    async def source() -> AsyncIterator[Message]:
        for item in messages:
            yield item

    async with db.begin() as conn:
        await rebuild(conn, envelopes_of(source(), report), report=report)
    assert (report.undecodable, report.invalid, report.ignored, report.applied) == (1, 2, 1, len(in_order))
    assert await model(db) == reference[1]


async def test_replay_and_the_live_consumer_can_run_at_the_same_time(
    databases: Databases, in_order: list[Envelope], reference: tuple[Database, Model]
) -> None:
    db = await databases.fresh()
    first_half, second_half = in_order[: len(in_order) // 2], in_order[len(in_order) // 2 :]
    await consume(db, first_half)
    replay_started = asyncio.Event()
    release = asyncio.Event()

    async def slow_stream() -> AsyncIterator[Envelope]:
        for envelope in in_order[:-3]:  # the broker has not got the last three yet
            yield envelope
        replay_started.set()
        await release.wait()

    async def run_replay() -> ReplayReport:
        async with db.begin() as conn:
            return await rebuild(conn, slow_stream())

    replaying = asyncio.create_task(run_replay())
    await asyncio.wait_for(replay_started.wait(), 10)
    live = asyncio.create_task(consume(db, second_half))  # blocks on the replay's locks, no deadlock
    await asyncio.sleep(0.3)
    assert not live.done()
    release.set()
    await asyncio.wait_for(replaying, 10)
    await asyncio.wait_for(live, 10)
    assert await model(db) == reference[1]


# --- live status changes -------------------------------------------------------------------------


def dsn(db: Database) -> str:
    return plain_url(db.server_url, db.name)


async def apply(db: Database, envelope: Envelope, *, commit: bool = True) -> None:
    class Rollback(Exception):
        pass

    try:
        async with db.begin() as conn:
            await PostgresOrderViews(conn).apply(OrderUpdate.from_event(envelope.version, envelope.payload))
            if not commit:
                raise Rollback
    except Rollback:
        pass


async def test_a_view_change_is_notified_when_committed_and_only_then(databases: Databases) -> None:
    db = await databases.fresh()
    live = LiveOrders(dsn(db))
    order_id = "7f6a3c1e-0000-4000-8000-000000000004"
    try:
        async with live.subscribe(order_id) as queue:
            assert live.listening and live.subscribers(order_id) == 1
            await apply(db, order_envelope(order_id, 1), commit=False)
            await apply(db, order_envelope(order_id, 2))
            assert await asyncio.wait_for(queue.get(), 5) == StatusChange(order_id, 2, "paid")
            await apply(db, order_envelope(order_id, 1))  # stale: history only, no notification
            await apply(db, order_envelope(order_id, 3))
            assert await asyncio.wait_for(queue.get(), 5) == StatusChange(order_id, 3, "assigned")
            assert queue.empty()
        assert live.subscribers() == 0
    finally:
        await live.close()


async def collect(
    body: AsyncIterator[bytes], until: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 10
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Parse SSE chunks into events (with their id and name) until `until(events)` or the end."""
    events: list[dict[str, Any]] = []
    chunks: list[bytes] = []

    async def read() -> None:
        async for chunk in body:
            chunks.append(chunk)
            if chunk.startswith(b":"):
                continue
            fields = dict(line.split(": ", 1) for line in chunk.decode().strip().split("\n"))
            events.append({"event": fields["event"], "id": int(fields["id"]), **json.loads(fields["data"])})
            if until(events):
                return

    await asyncio.wait_for(read(), timeout)
    return events, chunks


async def test_the_event_stream_sends_the_current_state_then_each_change_and_ends_after_a_terminal_one(
    databases: Databases,
) -> None:
    db = await databases.fresh()
    live = LiveOrders(dsn(db))
    order_id = "7f6a3c1e-0000-4000-8000-000000000001"
    for version in (1, 2):
        await apply(db, order_envelope(order_id, version))
    try:
        body = status_events(
            SqlOrderInfoUnitOfWork(db, None), live, uuid.UUID(order_id), heartbeat_seconds=0.2
        )
        events, _ = await collect(body, lambda seen: len(seen) == 1)
        assert events == [
            {"event": "status", "id": 2, "order_id": order_id, "status": "paid", "version": 2, "at": at(0, 2)}
        ]
        assert live.subscribers(order_id) == 1
        # Changes as they are applied (a duplicate and a stale one send nothing), keep-alives between.
        await apply(db, order_envelope(order_id, 3))
        await apply(db, order_envelope(order_id, 3))
        await apply(db, order_envelope(order_id, 1))
        more, _ = await collect(body, lambda seen: len(seen) == 1)
        assert [(e["id"], e["status"]) for e in more] == [(3, "assigned")]
        _, idle = await collect(_until_keep_alive(body), lambda _: False, timeout=2)
        assert idle[-1] == KEEP_ALIVE
        # Two changes committed at once both come, in order; the stream ends after the terminal one.
        for version in (4, 5, 6):
            await apply(db, order_envelope(order_id, version))
        rest, _ = await collect(body, lambda _: False)
        assert [(e["id"], e["status"]) for e in rest] == [(4, "ready"), (5, "in_delivery"), (6, "completed")]
        assert live.subscribers() == 0, "the finished stream freed its subscription"

        # Resuming after Last-Event-ID: the history since then, then the end.
        resumed, _ = await collect(
            status_events(SqlOrderInfoUnitOfWork(db, None), live, uuid.UUID(order_id), 3), lambda _: False
        )
        assert [e["id"] for e in resumed] == [4, 5, 6]
        # Connecting to a finished order: its final state, then the end.
        final, _ = await collect(
            status_events(SqlOrderInfoUnitOfWork(db, None), live, uuid.UUID(order_id)), lambda _: False
        )
        assert [(e["id"], e["status"]) for e in final] == [(6, "completed")]
    finally:
        await live.close()


async def _until_keep_alive(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk
        if chunk == KEEP_ALIVE:
            return


async def test_a_stream_waits_for_an_order_the_read_model_has_not_seen_and_a_client_leaving_frees_it(
    databases: Databases,
) -> None:
    db = await databases.fresh()
    live = LiveOrders(dsn(db))
    order_id = "7f6a3c1e-0000-4000-8000-000000000003"
    try:
        body = status_events(SqlOrderInfoUnitOfWork(db, None), live, uuid.UUID(order_id), heartbeat_seconds=5)
        first = asyncio.ensure_future(body.__anext__())
        await asyncio.sleep(0.3)
        assert not first.done() and live.subscribers(order_id) == 1
        await apply(db, order_envelope(order_id, 2))  # the read model hears of it at "paid"
        chunk = await asyncio.wait_for(first, 5)
        assert b"id: 2\n" in chunk and b'"status":"paid"' in chunk
        # The client goes away mid-stream: the server closes the body, the subscription is freed.
        await body.aclose()  # type: ignore[attr-defined]
        assert live.subscribers() == 0
    finally:
        await live.close()


async def test_the_listener_comes_back_after_its_connection_is_killed(databases: Databases) -> None:
    db = await databases.fresh()
    live = LiveOrders(dsn(db))
    order_id = "7f6a3c1e-0000-4000-8000-000000000002"
    try:
        async with live.subscribe(order_id) as queue:
            admin = await asyncpg.connect(dsn(db))
            try:
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND query LIKE 'LISTEN%'",
                    db.name,
                )
            finally:
                await admin.close()
            assert killed == 1
            assert await asyncio.wait_for(queue.get(), 10) is None  # "look again": it listens anew
            await apply(db, order_envelope(order_id, 1))
            assert await asyncio.wait_for(queue.get(), 5) == StatusChange(order_id, 1, "created")
    finally:
        await live.close()


# --- `sandwich replay order_info` against a real broker -------------------------------------------


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterable[str]:
    broker = EmbeddedNats()
    broker.start(tmp_path_factory.mktemp("nats"))
    try:
        yield broker.url
    finally:
        broker.stop()


async def test_sandwich_replay_rebuilds_from_the_broker_of_a_running_platform(
    databases: Databases,
    in_order: list[Envelope],
    reference: tuple[Database, Model],
    nats_url: str,
    tmp_path: Path,
) -> None:
    topic_prefix = f"t{uuid.uuid4().hex[:8]}."
    bus = NatsBus(nats_url, topic_prefix=topic_prefix)
    await bus.start()
    try:
        for envelope in duplicated_and_shuffled(in_order, 11):
            await bus.publish(TOPIC_ORDER_EVENTS, envelope.key, envelope.to_bytes())
    finally:
        await bus.close()
    settings = databases.settings("cli")
    settings = replace(settings, nats_url=nats_url, topic_prefix=topic_prefix)

    report = await replay_order_info(settings)
    assert (report.orders_before, report.orders, report.applied) == (0, 4, report.events - len(in_order))
    db = Database(settings, "order_info")
    databases.made.append(db)
    assert await model(db) == reference[1]

    # The command line, finding the platform through the data directory of `sandwich up`.
    (tmp_path / "platform.json").write_text(
        json.dumps(
            {
                "database_url": server_url(),
                "nats_url": nats_url,
                "kafka_bootstrap_servers": "",
                "db_prefix": settings.db_prefix,
                "topic_prefix": topic_prefix,
                "gateway_url": "http://127.0.0.1:1",
                "flow": "hybrid",
            }
        )
    )
    ran = await asyncio.to_thread(sandwich, "replay", "order_info", "--data-dir", str(tmp_path))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "orders rebuilt" in ran.stdout and "events applied" in ran.stdout
    assert await model(db) == reference[1]
    missing = await asyncio.to_thread(
        sandwich, "replay", "order_info", "--data-dir", str(tmp_path / "nowhere")
    )
    assert missing.returncode == 1 and "no running platform" in missing.stderr


def sandwich(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line, as a user runs it (a process of its own: it configures logging for itself)."""
    return subprocess.run(
        [sys.executable, "-m", "sandwich.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
