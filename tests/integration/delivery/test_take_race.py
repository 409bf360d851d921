"""Against a real PostgreSQL: of many couriers racing to take one ready order exactly one wins, and
order events applied twice, late or out of order change nothing they should not."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from sandwich.platform.bus.base import Message
from sandwich.platform.db import Database
from sandwich.platform.events import ORDER_EVENT, TOPIC_ORDER_EVENTS, Envelope
from sandwich.platform.inbox import idempotent_consumer
from sandwich.services.delivery.domain import DeliveryStatus, DeliveryUpdate, Pickup, TakeOutcome
from sandwich.services.delivery.handlers import CONSUMER, OrderEventHandler
from sandwich.services.delivery.ports import FoodPoints
from sandwich.services.delivery.storage import PostgresDeliveries

pytestmark = pytest.mark.integration

COURIERS = 10


def order_event(order_id: uuid.UUID, status: str, courier: str | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "previous_status": None,
        "at": "2024-01-05T12:00:00Z",
        "order": {
            "order_id": str(order_id),
            "user_id": str(uuid.uuid4()),
            "username": "alice",
            "status": status,
            "items": [{"menu_item_id": "m1", "name": "BLT", "quantity": 2, "price": 34900}],
            "total": 69800,
            "delivery": {"address": "Tverskaya 1", "lat": 55.76, "lon": 37.61},
            "food_point_id": "fp-1",
            "courier": courier,
            "created_at": "2024-01-05T11:50:00Z",
            "updated_at": "2024-01-05T12:00:00Z",
        },
    }


def update(order_id: uuid.UUID, version: int, status: str, courier: str | None = None) -> DeliveryUpdate:
    result = DeliveryUpdate.from_event(version, order_event(order_id, status, courier))
    assert result is not None
    return result


async def apply(db: Database, upd: DeliveryUpdate, pickup: Pickup | None = None) -> bool:
    async with db.begin() as conn:
        return await PostgresDeliveries(conn).apply_update(upd, pickup)


async def row(db: Database, order_id: uuid.UUID) -> Any:
    async with db.connect() as conn:
        return await PostgresDeliveries(conn).load(order_id)


async def race(
    db: Database, order_id: uuid.UUID, couriers: list[str]
) -> list[tuple[TakeOutcome, int | None]]:
    """Every courier takes the order in a transaction of their own, all released at the same moment."""
    start = asyncio.Event()

    async def one(courier: str) -> tuple[TakeOutcome, int | None]:
        async with db.begin() as conn:
            await conn.execute(text("SELECT 1"))  # hold a connection before the start signal
            await start.wait()
            return await PostgresDeliveries(conn).take(order_id, courier)

    tasks = [asyncio.create_task(one(c)) for c in couriers]
    await asyncio.sleep(0.2)
    start.set()
    return await asyncio.gather(*tasks)


@pytest.mark.parametrize("round_", range(5))
async def test_of_ten_racing_couriers_exactly_one_takes_the_order(clean: Database, round_: int) -> None:
    order_id = uuid.uuid4()
    assert await apply(clean, update(order_id, 4, "ready"))
    couriers = [f"courier-{round_}-{i}" for i in range(COURIERS)]

    results = await race(clean, order_id, couriers)

    winners = [c for c, (outcome, _) in zip(couriers, results, strict=True) if outcome is TakeOutcome.WON]
    assert len(winners) == 1, results
    losers = [outcome for outcome, _ in results if outcome is not TakeOutcome.WON]
    assert losers == [TakeOutcome.ALREADY_TAKEN] * (COURIERS - 1)
    stored = await row(clean, order_id)
    assert stored.status is DeliveryStatus.IN_DELIVERY
    assert stored.courier == winners[0]
    assert stored.taken_at is not None
    assert stored.version == 4  # a local take does not move the order's version

    # The winner asking again is told it is theirs; a late courier is told it is taken.
    async with clean.begin() as conn:
        assert await PostgresDeliveries(conn).take(order_id, winners[0]) == (TakeOutcome.ALREADY_MINE, None)
        assert await PostgresDeliveries(conn).take(order_id, "late") == (TakeOutcome.ALREADY_TAKEN, None)


async def test_unknown_order_is_not_found(clean: Database) -> None:
    async with clean.begin() as conn:
        assert await PostgresDeliveries(conn).take(uuid.uuid4(), "bob") == (TakeOutcome.NOT_FOUND, None)


async def test_a_released_take_is_offered_again_and_can_be_won_by_another(clean: Database) -> None:
    order_id = uuid.uuid4()
    await apply(clean, update(order_id, 4, "ready"))
    async with clean.begin() as conn:
        outcome, version = await PostgresDeliveries(conn).take(order_id, "bob")
    assert outcome is TakeOutcome.WON and version == 4
    async with clean.begin() as conn:
        assert await PostgresDeliveries(conn).release(order_id, "eve", 4) is False  # not eve's to release
        assert await PostgresDeliveries(conn).release(order_id, "bob", 4) is True
    stored = await row(clean, order_id)
    assert (stored.status, stored.courier, stored.taken_at) == (DeliveryStatus.READY, None, None)
    async with clean.connect() as conn:
        assert [d.order_id for d in await PostgresDeliveries(conn).offered(10)] == [str(order_id)]
    results = await race(clean, order_id, ["eve", "mallory", "trent"])
    assert sorted(outcome.value for outcome, _ in results) == ["already_taken", "already_taken", "won"]


async def test_release_leaves_a_take_that_orders_confirmed_meanwhile(clean: Database) -> None:
    order_id = uuid.uuid4()
    await apply(clean, update(order_id, 4, "ready"))
    async with clean.begin() as conn:
        _, version = await PostgresDeliveries(conn).take(order_id, "bob")
    assert version == 4
    # orders accepted the take after all (the answer was lost): its in_delivery event arrives.
    assert await apply(clean, update(order_id, 5, "in_delivery", "bob"))
    async with clean.begin() as conn:
        assert await PostgresDeliveries(conn).release(order_id, "bob", version) is False
    stored = await row(clean, order_id)
    assert (stored.status, stored.courier, stored.version) == (DeliveryStatus.IN_DELIVERY, "bob", 5)


async def test_stale_and_duplicated_events_change_nothing(clean: Database) -> None:
    order_id = uuid.uuid4()
    assert await apply(clean, update(order_id, 4, "ready"), Pickup(55.7, 37.6, "Arbat 2"))
    first = await row(clean, order_id)
    assert first.status is DeliveryStatus.READY and first.pickup == Pickup(55.7, 37.6, "Arbat 2")
    assert first.ready_at is not None

    # The same version again (a redelivery under another event id) changes nothing.
    assert not await apply(clean, update(order_id, 4, "ready"))
    assert await row(clean, order_id) == first

    # The courier takes it; orders confirms with version 5.
    async with clean.begin() as conn:
        assert (await PostgresDeliveries(conn).take(order_id, "bob"))[0] is TakeOutcome.WON
    taken_locally = await row(clean, order_id)
    assert await apply(clean, update(order_id, 5, "in_delivery", "bob"))
    confirmed = await row(clean, order_id)
    assert (confirmed.status, confirmed.courier, confirmed.version) == (DeliveryStatus.IN_DELIVERY, "bob", 5)
    assert confirmed.taken_at == taken_locally.taken_at  # the local moment of the take is kept
    assert confirmed.pickup == first.pickup  # events without a pickup keep the known one

    # A late ready event (older version) does not offer the order again.
    assert not await apply(clean, update(order_id, 4, "ready"))
    assert not await apply(clean, update(order_id, 5, "in_delivery", "bob"))
    assert await row(clean, order_id) == confirmed
    async with clean.connect() as conn:
        assert await PostgresDeliveries(conn).offered(10) == []

    assert await apply(clean, update(order_id, 6, "completed", "bob"))
    done = await row(clean, order_id)
    assert (done.status, done.version) == (DeliveryStatus.COMPLETED, 6)
    assert done.completed_at is not None
    for stale in (update(order_id, 5, "in_delivery", "bob"), update(order_id, 4, "ready")):
        assert not await apply(clean, stale)
    assert await row(clean, order_id) == done


async def test_events_out_of_order_converge(clean: Database) -> None:
    order_id = uuid.uuid4()
    # in_delivery (version 5) arrives before ready (version 4): the row is in delivery, and stays so.
    assert await apply(clean, update(order_id, 5, "in_delivery", "bob"))
    assert not await apply(clean, update(order_id, 4, "ready"))
    stored = await row(clean, order_id)
    assert (stored.status, stored.courier, stored.version) == (DeliveryStatus.IN_DELIVERY, "bob", 5)
    async with clean.begin() as conn:
        assert await PostgresDeliveries(conn).take(order_id, "eve") == (TakeOutcome.ALREADY_TAKEN, None)


async def test_complete_only_moves_the_couriers_own_delivery(clean: Database) -> None:
    order_id = uuid.uuid4()
    await apply(clean, update(order_id, 4, "ready"))
    async with clean.begin() as conn:
        await PostgresDeliveries(conn).take(order_id, "bob")
        assert await PostgresDeliveries(conn).mark_completed(order_id, "eve") is False
        assert await PostgresDeliveries(conn).mark_completed(order_id, "bob") is True
        assert await PostgresDeliveries(conn).state(order_id) == ("completed", "bob")


async def test_pickups_are_filled_in_later(clean: Database) -> None:
    first, second, elsewhere = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await apply(clean, update(first, 4, "ready"))
    await apply(clean, update(second, 4, "ready"))
    other = update(elsewhere, 4, "ready")
    await apply(clean, DeliveryUpdate(**{**other.__dict__, "food_point_id": "fp-2"}))
    async with clean.begin() as conn:
        assert sorted(await PostgresDeliveries(conn).food_points_missing_pickup()) == ["fp-1", "fp-2"]
        assert await PostgresDeliveries(conn).set_pickup("fp-1", Pickup(55.7, 37.6, "Arbat 2")) == 2
        assert await PostgresDeliveries(conn).food_points_missing_pickup() == ["fp-2"]
    assert (await row(clean, first)).pickup == Pickup(55.7, 37.6, "Arbat 2")
    assert (await row(clean, elsewhere)).pickup is None


class NoKitchen:
    async def request(self, *_: Any, **__: Any) -> Any:
        from sandwich.platform.http import ServiceUnavailable

        raise ServiceUnavailable("kitchen", "not running in this test")


async def test_the_consumer_applies_an_event_once_through_the_inbox(clean: Database) -> None:
    handler = OrderEventHandler(FoodPoints(NoKitchen()))  # type: ignore[arg-type]
    consume = idempotent_consumer(clean, "delivery", CONSUMER, handler)
    order_id = uuid.uuid4()

    def message(
        version: int, status: str, courier: str | None = None, event_id: str | None = None
    ) -> Message:
        envelope = Envelope(
            type=ORDER_EVENT,
            producer="orders",
            key=str(order_id),
            version=version,
            payload=order_event(order_id, status, courier),
        )
        if event_id:
            envelope = envelope.model_copy(update={"event_id": event_id})
        return Message(TOPIC_ORDER_EVENTS, str(order_id), envelope.to_bytes())

    # Statuses before ready leave no row; a kitchen that is down leaves the pickup unknown.
    await consume(message(3, "assigned"))
    assert await row(clean, order_id) is None
    ready_id = str(uuid.uuid4())
    await consume(message(4, "ready", event_id=ready_id))
    offered = await row(clean, order_id)
    assert offered.status is DeliveryStatus.READY and offered.pickup is None

    await consume(message(5, "in_delivery", "bob"))
    await consume(message(4, "ready", event_id=ready_id))  # the very same event redelivered
    await consume(message(4, "ready"))  # the same version under another id
    stored = await row(clean, order_id)
    assert (stored.status, stored.courier, stored.version) == (DeliveryStatus.IN_DELIVERY, "bob", 5)
    async with clean.connect() as conn:
        handled = (
            await conn.execute(text("SELECT count(*) FROM inbox WHERE consumer = 'delivery'"))
        ).scalar()
    assert handled == 4  # assigned, ready, in_delivery, the second ready: each id once
