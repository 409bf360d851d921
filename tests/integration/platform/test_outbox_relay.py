"""The outbox relay against a real PostgreSQL and a real NATS JetStream: rows handed over after their
commit go out from memory and are marked, rows nobody handed over are looked up, and after a broker
outage what waited goes out first and in order, ahead of anything handed over later."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from sandwich.platform.bus.base import Message
from sandwich.platform.bus.nats import NatsBus
from sandwich.platform.db import Database
from sandwich.platform.embedded.brokers import EmbeddedNats
from sandwich.platform.events import Envelope
from sandwich.platform.outbox import OUTBOX_ROW_IDS, OUTBOX_ROWS, Event, OutboxRelay, committed, outbox_params
from tests.integration.scratch import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPIC = "order.events"
WRITE = text(f"WITH events AS ({OUTBOX_ROWS} RETURNING id) SELECT {OUTBOX_ROW_IDS.format(cte='events')}")


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with scratch_database("relay") as database:
        async with database.connect() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE outbox (id BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL UNIQUE, topic TEXT NOT NULL, "
                    "key TEXT NOT NULL, envelope BYTEA NOT NULL, kind TEXT, "
                    "created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), published_at TIMESTAMPTZ, "
                    "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)"
                )
            )
        yield database


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedNats]:
    nats = EmbeddedNats()
    nats.start(tmp_path / "nats")
    try:
        yield nats
    finally:
        nats.stop()


class Received:
    def __init__(self) -> None:
        self.values: list[str] = []

    async def handler(self, message: Message) -> None:
        self.values.append(Envelope.from_bytes(message.value).payload["n"])


async def started_bus(broker: EmbeddedNats, received: Received) -> NatsBus:
    bus = NatsBus(broker.url, topic_prefix=f"t{uuid.uuid4().hex[:8]}.", start_timeout_seconds=2.0)
    await bus.start()
    await bus.ensure_topics([TOPIC])
    await bus.subscribe(TOPIC, "reader", received.handler)
    return bus


def events(*labels: str) -> list[Event]:
    return [
        Event(TOPIC, Envelope(type="t", producer="test", key="order-1", payload={"n": n}), "paid")
        for n in labels
    ]


async def write(db: Database, batch: list[Event]) -> list[int]:
    async with db.connect() as conn:
        return list((await conn.execute(WRITE, outbox_params(batch))).scalar_one())


async def eventually(check, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def unpublished(db: Database) -> int:
    async with db.connect() as conn:
        return int(
            (await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar_one()
        )


async def test_rows_handed_over_go_out_in_id_order_and_are_marked(db: Database, broker: EmbeddedNats) -> None:
    received = Received()
    bus = await started_bus(broker, received)
    relay = OutboxRelay(db, bus, "test", poll_seconds=30.0)  # no poll during the test: only hand-overs
    relay.start()
    try:
        relay.notify()
        await asyncio.sleep(0.2)  # the first pass (a lookup of an empty outbox) is done
        first, second = events("a", "b"), events("c")
        first_rows = committed(await write(db, first), first)
        second_rows = committed(await write(db, second), second)
        relay.hand_over(second_rows)  # handed over out of order, in one loop turn
        relay.hand_over(first_rows)

        async def all_out() -> bool:
            return received.values == ["a", "b", "c"] and await unpublished(db) == 0

        await eventually(all_out, "the handed-over rows published in id order and marked")
    finally:
        await relay.stop()
        await bus.close()


async def test_marks_are_gathered_and_a_clean_stop_records_those_still_waiting(
    db: Database, broker: EmbeddedNats
) -> None:
    received = Received()
    bus = await started_bus(broker, received)
    # No poll, and marks gathered for longer than the test: only the stop can record them.
    relay = OutboxRelay(db, bus, "test", poll_seconds=30.0, mark_linger_seconds=30.0)
    relay.start()
    try:
        relay.notify()  # the first pass: a lookup of the empty outbox; after it, hand-overs count
        await asyncio.sleep(0.2)
        batch = events("p", "q")
        relay.hand_over(committed(await write(db, batch), batch))
        deadline = time.monotonic() + 10.0
        while received.values != ["p", "q"]:
            assert time.monotonic() < deadline, "the handed-over rows were not published"
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
        assert await unpublished(db) == 2
    finally:
        await relay.stop()
        await bus.close()
    assert await unpublished(db) == 0, "a clean stop left published rows unmarked"


async def test_rows_nobody_handed_over_are_looked_up_when_notified(
    db: Database, broker: EmbeddedNats
) -> None:
    received = Received()
    bus = await started_bus(broker, received)
    relay = OutboxRelay(db, bus, "test", poll_seconds=30.0)
    relay.start()
    try:
        await asyncio.sleep(0.2)
        await write(db, events("x", "y"))
        relay.notify()

        async def all_out() -> bool:
            return received.values == ["x", "y"] and await unpublished(db) == 0

        await eventually(all_out, "the looked-up rows")
    finally:
        await relay.stop()
        await bus.close()


async def test_after_an_outage_what_waited_goes_out_first_and_in_order(
    db: Database, broker: EmbeddedNats
) -> None:
    received = Received()
    bus = await started_bus(broker, received)
    relay = OutboxRelay(db, bus, "test", poll_seconds=0.3)
    relay.start()
    try:
        await asyncio.sleep(0.2)
        broker.stop()
        during = events("1", "2")
        relay.hand_over(committed(await write(db, during), during))
        await asyncio.sleep(1.0)  # the publish fails; the rows wait in the outbox
        assert await unpublished(db) == 2 and received.values == []
        broker.start()
        after = events("3")
        relay.hand_over(committed(await write(db, after), after))

        async def all_out() -> bool:
            return received.values[-3:] == ["1", "2", "3"] and await unpublished(db) == 0

        await eventually(all_out, "the waiting rows, then the new one", timeout=40.0)
        assert [v for v in received.values if v in ("1", "2", "3")] == ["1", "2", "3"]
    finally:
        await relay.stop()
        await bus.close()
