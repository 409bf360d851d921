"""basket against a real PostgreSQL: its schema, the paid-from-basket consumer (once per order, however
often and under whatever event ids the payment arrives), and its routes with a stand-in menu.

The server is $DATABASE_URL or the session's embedded one (tests/engines.py); the session gets a
database of its own, dropped at the end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import sandwich.services.basket as basket_package
from sandwich.platform.app import Service
from sandwich.platform.bus.base import Message
from sandwich.platform.db import Database, plain_url
from sandwich.platform.events import ORDER_EVENT, TOPIC_ORDER_EVENTS, Envelope, OrderEvent, rfc3339, utcnow
from sandwich.platform.inbox import idempotent_consumer
from sandwich.platform.settings import Flow, Settings
from sandwich.services.basket.api import router
from sandwich.services.basket.context import BasketContext
from sandwich.services.basket.domain import MenuEntry, changes
from sandwich.services.basket.handlers import CONSUMER, PaidOrdersConsumer
from sandwich.services.basket.ports import MenuUnavailable
from sandwich.services.basket.storage import PostgresBaskets
from sandwich.services.basket.unit_of_work import SqlBasketUnitOfWork
from tests.credentials import SignedTransport, User
from tests.integration.scratch import server_url

pytestmark = pytest.mark.integration

MIGRATIONS = Path(basket_package.__file__).parent / "migrations"

CLUB = "7f6a3c1e-0000-4000-8000-000000000001"
BLT = "7f6a3c1e-0000-4000-8000-000000000002"
TUNA = "7f6a3c1e-0000-4000-8000-000000000003"
MENU = {CLUB: MenuEntry("Club", 45_000), BLT: MenuEntry("BLT", 39_900), TUNA: MenuEntry("Tuna", 41_000)}


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        service="basket",
        flow=Flow.SYNC,
        database_url=server_url(),
        db_prefix=f"it_{uuid.uuid4().hex[:12]}",
        log_level="warning",
    )


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings, "basket")
    try:
        await db.prepare(MIGRATIONS)
        yield db
    finally:
        await db.close()
        admin = await asyncpg.connect(plain_url(server_url(), make_url(server_url()).database or "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
        finally:
            await admin.close()


def paid_envelope(
    user_id: str,
    order_id: str,
    items: Iterable[tuple[str, int]],
    *,
    status: str = "paid",
    from_basket: bool = True,
    version: int = 2,
) -> Envelope:
    now = rfc3339(utcnow())
    order = {
        "order_id": order_id,
        "user_id": user_id,
        "username": "alice",
        "status": status,
        "items": [
            {"menu_item_id": item, "name": MENU[item].name, "quantity": quantity, "price": MENU[item].price}
            for item, quantity in items
        ],
        "total": sum(MENU[item].price * quantity for item, quantity in items),
        "delivery": {"address": "Main st 1", "lat": 55.75, "lon": 37.61},
        "created_at": now,
        "updated_at": now,
        "from_basket": from_basket,
    }
    event = OrderEvent.model_validate(
        {"status": status, "previous_status": "created", "at": now, "order": order}
    )
    return Envelope(
        type=ORDER_EVENT, producer="orders", key=order_id, version=version, payload=event.model_dump()
    )


def message(envelope: Envelope) -> Message:
    return Message(topic=TOPIC_ORDER_EVENTS, key=envelope.key, value=envelope.to_bytes())


async def fill(db: Database, user_id: str, lines: dict[str, int]) -> None:
    user = uuid.UUID(user_id)
    async with db.begin() as conn:
        baskets = PostgresBaskets(conn)
        await baskets.lock(user)
        before = dict(await baskets.lines_of(user))
        await baskets.write_changes(user, changes(before, {**before, **lines}))


async def basket(db: Database, user_id: str) -> dict[str, int]:
    async with db.connect() as conn:
        return dict(await PostgresBaskets(conn).lines_of(uuid.UUID(user_id)))


def consumer(db: Database) -> Any:
    return idempotent_consumer(db, "basket", CONSUMER, PaidOrdersConsumer().on_order_event)


def new_id() -> str:
    return str(uuid.uuid4())


# --- storage -------------------------------------------------------------------------------------


async def test_lines_keep_the_order_they_were_added_in(database: Database) -> None:
    user = new_id()
    await fill(database, user, {TUNA: 1})
    await fill(database, user, {CLUB: 2})
    await fill(database, user, {TUNA: 4})  # changing a quantity keeps the line's place
    async with database.connect() as conn:
        assert await PostgresBaskets(conn).lines_of(uuid.UUID(user)) == [(TUNA, 4), (CLUB, 2)]


async def test_a_zero_quantity_never_reaches_the_table(database: Database) -> None:
    user = uuid.UUID(new_id())
    with pytest.raises(Exception, match="basket_lines_quantity_check"):
        async with database.begin() as conn:
            await conn.execute(
                text("INSERT INTO basket_lines (user_id, menu_item_id, quantity) VALUES (:user, :item, 0)"),
                {"user": user, "item": CLUB},
            )


# --- the paid-from-basket consumer ---------------------------------------------------------------


async def test_a_paid_order_from_the_basket_is_subtracted_once_when_delivered_twice(
    database: Database,
) -> None:
    user, order = new_id(), new_id()
    await fill(database, user, {CLUB: 3, BLT: 1})
    handle = consumer(database)
    envelope = paid_envelope(user, order, [(CLUB, 2), (BLT, 1)])
    await handle(message(envelope))
    assert await basket(database, user) == {CLUB: 1}
    await handle(message(envelope))  # at-least-once: the same event again
    assert await basket(database, user) == {CLUB: 1}


async def test_a_republished_paid_event_with_a_new_event_id_does_nothing(database: Database) -> None:
    user, order = new_id(), new_id()
    await fill(database, user, {CLUB: 4})
    handle = consumer(database)
    await handle(message(paid_envelope(user, order, [(CLUB, 2)])))
    await handle(message(paid_envelope(user, order, [(CLUB, 2)], version=3)))
    assert await basket(database, user) == {CLUB: 2}


async def test_concurrent_deliveries_of_one_payment_subtract_once(database: Database) -> None:
    user, order = new_id(), new_id()
    await fill(database, user, {CLUB: 10})
    handle = consumer(database)
    first = paid_envelope(user, order, [(CLUB, 3)])
    await asyncio.gather(
        *(handle(message(first)) for _ in range(4)),
        *(handle(message(paid_envelope(user, order, [(CLUB, 3)]))) for _ in range(4)),
    )
    assert await basket(database, user) == {CLUB: 7}


async def test_lines_added_after_ordering_stay(database: Database) -> None:
    user, order = new_id(), new_id()
    await fill(database, user, {CLUB: 2})
    await fill(database, user, {TUNA: 1, CLUB: 3})  # after ordering 2 clubs, before the payment
    await consumer(database)(message(paid_envelope(user, order, [(CLUB, 2)])))
    assert await basket(database, user) == {CLUB: 1, TUNA: 1}


async def test_other_events_leave_the_basket_alone(database: Database) -> None:
    user = new_id()
    await fill(database, user, {CLUB: 2})
    handle = consumer(database)
    await handle(message(paid_envelope(user, new_id(), [(CLUB, 2)], from_basket=False)))
    await handle(message(paid_envelope(user, new_id(), [(CLUB, 2)], status="created", version=1)))
    await handle(message(paid_envelope(user, new_id(), [(CLUB, 2)], status="payment_failed")))
    assert await basket(database, user) == {CLUB: 2}


async def test_other_users_baskets_are_untouched(database: Database) -> None:
    alice, bob = new_id(), new_id()
    await fill(database, alice, {CLUB: 2})
    await fill(database, bob, {CLUB: 2})
    await consumer(database)(message(paid_envelope(alice, new_id(), [(CLUB, 2)])))
    assert await basket(database, alice) == {}
    assert await basket(database, bob) == {CLUB: 2}


async def test_a_malformed_order_event_raises_and_changes_nothing(database: Database) -> None:
    user = new_id()
    await fill(database, user, {CLUB: 2})
    broken = Envelope(type=ORDER_EVENT, producer="orders", key="x", payload={"status": "paid"})
    with pytest.raises(ValueError):
        await consumer(database)(message(broken))
    assert await basket(database, user) == {CLUB: 2}
    async with database.connect() as conn:
        claimed = await conn.execute(
            text("SELECT count(*) FROM inbox WHERE event_id = :id"), {"id": uuid.UUID(broken.event_id)}
        )
        assert claimed.scalar_one() == 0  # rolled back with the failed effect: it can be retried


# --- the routes, with a stand-in menu ------------------------------------------------------------


class FakeMenu:
    def __init__(self) -> None:
        self.up = True
        self.asked: list[list[str]] = []

    async def lookup(self, menu_item_ids: Iterable[str]) -> dict[str, MenuEntry]:
        ids = sorted(set(menu_item_ids))
        self.asked.append(ids)
        if not self.up:
            raise MenuUnavailable("menu is down")
        return {item: MENU[item] for item in ids if item in MENU}


@pytest.fixture(scope="session")
async def api(settings: Settings, database: Database) -> AsyncIterator[tuple[httpx.AsyncClient, FakeMenu]]:
    service = Service("basket", title="basket under test", migrations=MIGRATIONS, settings=settings)
    menu = FakeMenu()
    service.context = BasketContext(
        unit_of_work=lambda: SqlBasketUnitOfWork(service.database, service.announce_committed), menu=menu
    )
    # as app.py: mounts the events route
    service.consume(TOPIC_ORDER_EVENTS, CONSUMER, PaidOrdersConsumer().on_order_event)
    app = service.create_app(router)
    await service.start()
    try:
        transport = SignedTransport(app, "basket")
        async with httpx.AsyncClient(transport=transport, base_url="http://basket") as client:
            yield client, menu
    finally:
        await service.stop()


def as_user(user_id: str) -> User:
    return User(user_id, f"u{user_id[:8]}", "customer")


async def test_put_and_get_the_basket(api: tuple[httpx.AsyncClient, FakeMenu]) -> None:
    client, menu = api
    user = as_user(new_id())
    answer = await client.put(f"/api/v1/basket/items/{CLUB}", json={"quantity": 2}, headers=user)
    assert answer.status_code == 200, answer.text
    answer = await client.put(f"/api/v1/basket/items/{BLT.upper()}", json={"quantity": 1}, headers=user)
    assert answer.status_code == 200, answer.text
    expected: dict[str, Any] = {
        "items": [
            {"menu_item_id": CLUB, "quantity": 2, "name": "Club", "price": 45_000},
            {"menu_item_id": BLT, "quantity": 1, "name": "BLT", "price": 39_900},
        ],
        "total": 129_900,
        "prices_unavailable": False,
    }
    assert answer.json() == expected
    assert menu.asked[-1] == sorted([CLUB, BLT])  # one lookup checks the item and prices the rest
    got = await client.get("/api/v1/basket", headers=user)
    assert got.status_code == 200 and got.json() == expected
    removed = await client.put(f"/api/v1/basket/items/{CLUB}", json={"quantity": 0}, headers=user)
    assert removed.json()["items"] == [expected["items"][1]] and removed.json()["total"] == 39_900
    internal = await client.get(f"/internal/v1/baskets/{user.user_id}")
    assert internal.json() == {"items": [{"menu_item_id": BLT, "quantity": 1}]}


async def test_bad_input_is_4xx_never_500(api: tuple[httpx.AsyncClient, FakeMenu]) -> None:
    client, _ = api
    user = as_user(new_id())
    unknown = await client.put(f"/api/v1/basket/items/{new_id()}", json={"quantity": 1}, headers=user)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_menu_item"
    malformed = await client.put("/api/v1/basket/items/not-an-id", json={"quantity": 1}, headers=user)
    assert malformed.status_code == 404 and malformed.json()["error"]["code"] == "unknown_menu_item"
    for body in ({"quantity": 51}, {"quantity": -1}, {"quantity": "2"}, {"quantity": 1.5}, {"q": 1}):
        answer = await client.put(f"/api/v1/basket/items/{CLUB}", json=body, headers=user)
        assert answer.status_code == 422, (body, answer.text)
    garbled = await client.put(
        f"/api/v1/basket/items/{CLUB}", content=b"{", headers={**user, "Content-Type": "application/json"}
    )
    assert garbled.status_code == 400
    assert (await client.get("/api/v1/basket")).status_code == 401
    assert (await client.get("/internal/v1/baskets/nope")).status_code == 422
    assert (await client.get("/api/v1/basket", headers=user)).json()["items"] == []


async def test_without_the_menu(api: tuple[httpx.AsyncClient, FakeMenu]) -> None:
    client, menu = api
    user = as_user(new_id())
    await client.put(f"/api/v1/basket/items/{TUNA}", json={"quantity": 3}, headers=user)
    menu.up = False
    try:
        got = await client.get("/api/v1/basket", headers=user)
        assert got.status_code == 200
        assert got.json() == {
            "items": [{"menu_item_id": TUNA, "quantity": 3, "name": None, "price": None}],
            "total": None,
            "prices_unavailable": True,
        }
        added = await client.put(f"/api/v1/basket/items/{CLUB}", json={"quantity": 1}, headers=user)
        assert added.status_code == 503 and added.json()["error"]["code"] == "service_unavailable"
        removed = await client.put(f"/api/v1/basket/items/{TUNA}", json={"quantity": 0}, headers=user)
        assert removed.status_code == 200 and removed.json()["items"] == []
    finally:
        menu.up = True


EVENTS = f"/internal/v1/events/{TOPIC_ORDER_EVENTS}"
"""Where the sync flow pushes order events: the platform's route in front of the registered consumer."""


async def test_order_events_pushed_over_http(
    api: tuple[httpx.AsyncClient, FakeMenu], database: Database
) -> None:
    client, _ = api
    user_id, order = new_id(), new_id()
    user = as_user(user_id)
    await client.put(f"/api/v1/basket/items/{CLUB}", json={"quantity": 3}, headers=user)

    async def push(envelope: Envelope) -> None:
        answer = await client.post(EVENTS, json=envelope.model_dump())
        assert (answer.status_code, answer.json()) == (
            200,
            {"event_id": envelope.event_id, "status": "handled"},
        )

    envelope = paid_envelope(user_id, order, [(CLUB, 2)])
    await push(envelope)
    assert await basket(database, user_id) == {CLUB: 1}
    await push(envelope)  # the same event again: the inbox recognises it
    assert await basket(database, user_id) == {CLUB: 1}
    await push(paid_envelope(user_id, order, [(CLUB, 2)]))  # the order's payment under a new event id
    assert await basket(database, user_id) == {CLUB: 1}
    await push(paid_envelope(user_id, new_id(), [(CLUB, 1)], status="created"))  # none of basket's business
    assert (await client.get(f"/internal/v1/baskets/{user_id}")).json()["items"] == [
        {"menu_item_id": CLUB, "quantity": 1}
    ]
    async with database.connect() as conn:
        claimed = await conn.execute(
            text("SELECT count(*) FROM inbox WHERE consumer = :consumer AND event_id = :id"),
            {"consumer": CONSUMER, "id": uuid.UUID(envelope.event_id)},
        )
        assert claimed.scalar_one() == 1

    not_an_envelope = await client.post(EVENTS, json={"type": ORDER_EVENT, "producer": "orders"})
    assert (not_an_envelope.status_code, not_an_envelope.json()["error"]["code"]) == (422, "invalid_event")
    broken = {**envelope.model_dump(), "event_id": new_id(), "payload": {}}
    not_handled = await client.post(EVENTS, json=broken)
    assert (not_handled.status_code, not_handled.json()["error"]["code"]) == (503, "event_not_handled")
    assert await basket(database, user_id) == {CLUB: 1}
