"""The kitchen's routes over ASGI against the real database, with orders played by a fake: the admin's
food points and stock, the cooks' queue and "ready", the lookup for delivery, and the order events the
sync flow pushes to the platform's `POST /internal/v1/events/order.events`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from sandwich.platform.app import Service
from sandwich.platform.db import Database
from sandwich.platform.events import TOPIC_ORDER_EVENTS
from sandwich.platform.settings import Settings
from sandwich.services.kitchen.api import router
from sandwich.services.kitchen.assigner import Assigner
from sandwich.services.kitchen.context import KitchenContext
from sandwich.services.kitchen.handlers import CONSUMER, handle_order_event
from sandwich.services.kitchen.unit_of_work import SqlKitchenUnitOfWork
from tests.credentials import SignedTransport, User
from tests.integration.kitchen.conftest import FakeOrders
from tests.integration.kitchen.test_assignment import (
    assigner,
    envelope,
    order,
    pending_ids,
    point_state,
    states,
)

pytestmark = pytest.mark.integration

EVENTS = f"/internal/v1/events/{TOPIC_ORDER_EVENTS}"

ADMIN = User(str(uuid.uuid4()), "root", "admin")
CUSTOMER = User(str(uuid.uuid4()), "alice", "customer")


def cook(food_point_id: str) -> User:
    return User(str(uuid.uuid4()), "chef", "cook", food_point_id=food_point_id)


class Kitchen:
    def __init__(
        self, client: httpx.AsyncClient, db: Database, assigner: Assigner, orders: FakeOrders
    ) -> None:
        self.client = client
        self.db = db
        self.assigner = assigner
        self.orders = orders

    async def point(self, lat: float = 55.751, lon: float = 37.621, capacity: int = 5, **stock: int) -> str:
        answer = await self.client.post(
            "/api/v1/admin/food-points",
            headers=ADMIN,
            json={
                "name": "P",
                "address": "A 1",
                "lat": lat,
                "lon": lon,
                "capacity": capacity,
                "accepts_delivery": True,
            },
        )
        assert answer.status_code == 201, answer.text
        point: str = answer.json()["food_point_id"]
        for ingredient, quantity in (stock or {"bread": 100, "ham": 100}).items():
            put = await self.client.put(
                f"/api/v1/admin/food-points/{point}/stock/{ingredient}",
                headers=ADMIN,
                json={"quantity": quantity},
            )
            assert put.status_code == 200, put.text
        return point

    async def paid(self, **kwargs: Any) -> str:
        pending = order(**kwargs)
        event = envelope("paid", pending)
        answer = await self.client.post(EVENTS, json=event.model_dump(mode="json"))
        assert (answer.status_code, answer.json()) == (200, {"event_id": event.event_id, "status": "handled"})
        return pending.order_id


@pytest.fixture
async def kitchen(db: Database, orders: FakeOrders) -> AsyncIterator[Kitchen]:
    service = Service("kitchen", title="kitchen under test", settings=Settings(database_url=db.server_url))
    service.db = db
    kitchen = assigner(db, orders)
    service.context = KitchenContext(
        unit_of_work=lambda: SqlKitchenUnitOfWork(db), orders=orders, wake_assigner=kitchen.wake
    )
    # as app.py: mounts the events route
    service.consume(TOPIC_ORDER_EVENTS, CONSUMER, handle_order_event)
    app = service.create_app(router)
    async with httpx.AsyncClient(
        transport=SignedTransport(app, "kitchen"), base_url="http://kitchen"
    ) as client:
        yield Kitchen(client, db, kitchen, orders)
    await service.http.close()


async def test_admin_manages_food_points_and_stock(kitchen: Kitchen) -> None:
    c = kitchen.client
    created = await c.post(
        "/api/v1/admin/food-points",
        headers=ADMIN,
        json={
            "name": " Corner  cafe ",
            "address": "Main 1",
            "lat": 10,
            "lon": 20,
            "capacity": 3,
            "accepts_delivery": True,
        },
    )
    assert created.status_code == 201
    body = created.json()
    point = body["food_point_id"]
    assert {k: body[k] for k in ("name", "lat", "lon", "capacity", "accepts_delivery", "active_orders")} == {
        "name": "Corner cafe",
        "lat": 10.0,
        "lon": 20.0,
        "capacity": 3,
        "accepts_delivery": True,
        "active_orders": 0,
    }
    patched = await c.patch(
        f"/api/v1/admin/food-points/{point}", headers=ADMIN, json={"capacity": 7, "accepts_delivery": False}
    )
    assert (
        patched.status_code == 200
        and patched.json()["capacity"] == 7
        and patched.json()["accepts_delivery"] is False
    )
    put = await c.put(f"/api/v1/admin/food-points/{point}/stock/bread", headers=ADMIN, json={"quantity": 12})
    assert put.json() == {"food_point_id": point, "ingredient": "bread", "quantity": 12}
    listed = (await c.get("/api/v1/admin/food-points", headers=ADMIN)).json()["items"]
    assert [(p["food_point_id"], p["stock"]) for p in listed] == [
        (point, [{"ingredient": "bread", "quantity": 12}])
    ]
    assert (await c.get(f"/internal/v1/food-points/{point}")).json()["address"] == "Main 1"


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    [
        ("POST", "/api/v1/admin/food-points", {}, {}, 401, "unauthorized"),
        ("POST", "/api/v1/admin/food-points", CUSTOMER, {}, 403, "forbidden"),
        (
            "POST",
            "/api/v1/admin/food-points",
            ADMIN,
            {"name": "x", "address": "y", "lat": 91, "lon": 0, "capacity": 1, "accepts_delivery": True},
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/food-points",
            ADMIN,
            {"name": "  ", "address": "y", "lat": 0, "lon": 0, "capacity": 1, "accepts_delivery": True},
            422,
            "invalid_field",
        ),
        (
            "PATCH",
            f"/api/v1/admin/food-points/{uuid.uuid4()}",
            ADMIN,
            {"capacity": 1},
            404,
            "food_point_not_found",
        ),
        (
            "PATCH",
            "/api/v1/admin/food-points/not-a-uuid",
            ADMIN,
            {"capacity": 1},
            404,
            "food_point_not_found",
        ),
        (
            "PUT",
            f"/api/v1/admin/food-points/{uuid.uuid4()}/stock/x",
            ADMIN,
            {"quantity": 1},
            404,
            "food_point_not_found",
        ),
        ("GET", "/internal/v1/food-points/not-a-uuid", {}, None, 404, "food_point_not_found"),
        ("GET", "/api/v1/kitchen/orders", CUSTOMER, None, 403, "forbidden"),
        ("GET", "/api/v1/kitchen/orders", cook("not-a-uuid"), None, 403, "no_food_point"),
        ("POST", f"/api/v1/kitchen/orders/{uuid.uuid4()}/ready", CUSTOMER, None, 403, "forbidden"),
        (
            "POST",
            "/api/v1/kitchen/orders/not-a-uuid/ready",
            cook(str(uuid.uuid4())),
            None,
            404,
            "order_not_found",
        ),
        (
            "POST",
            f"/api/v1/kitchen/orders/{uuid.uuid4()}/ready",
            cook(str(uuid.uuid4())),
            None,
            409,
            "illegal_transition",
        ),
        ("POST", EVENTS, {}, {"type": "OrderEvent", "producer": "x"}, 422, "invalid_event"),
        (
            "POST",
            "/internal/v1/events/user.events",
            {},
            {"type": "UserCreated", "producer": "x", "key": "k"},
            404,
            "unknown_topic",
        ),
    ],
)
async def test_bad_requests_are_answered_in_the_contract_shape(
    kitchen: Kitchen, method: str, path: str, headers: dict[str, str], body: Any, status: int, code: str
) -> None:
    answer = await kitchen.client.request(method, path, headers=headers, json=body)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text


async def test_a_patch_with_null_is_refused(kitchen: Kitchen) -> None:
    point = await kitchen.point()
    answer = await kitchen.client.patch(
        f"/api/v1/admin/food-points/{point}", headers=ADMIN, json={"capacity": None}
    )
    assert answer.status_code == 422


async def test_the_cook_cooks_and_the_slot_is_reused(kitchen: Kitchen) -> None:
    point = await kitchen.point(capacity=1)
    other = await kitchen.point(lat=0, lon=0, bread=0)  # far away and without bread: never chosen
    first = await kitchen.paid(paid_ago=2)
    second = await kitchen.paid(paid_ago=1)
    await kitchen.assigner.run_pass()
    c = kitchen.client

    queue = (await c.get("/api/v1/kitchen/orders", headers=cook(point))).json()["items"]
    assert [(item["order_id"], item["confirmed"]) for item in queue] == [(first, True)]
    assert queue[0]["ingredients"] == [{"name": "bread", "quantity": 2}, {"name": "ham", "quantity": 1}]
    assert (await c.get("/api/v1/kitchen/orders", headers=cook(other))).json()["items"] == []

    refused = await c.post(f"/api/v1/kitchen/orders/{first}/ready", headers=cook(other))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_your_food_point")
    not_yet = await c.post(f"/api/v1/kitchen/orders/{second}/ready", headers=cook(point))
    assert (not_yet.status_code, not_yet.json()["error"]["code"]) == (409, "illegal_transition")

    ready = await c.post(f"/api/v1/kitchen/orders/{first}/ready", headers=cook(point.upper()))
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert kitchen.orders.of("ready") == [("ready", first, point)]
    again = await c.post(f"/api/v1/kitchen/orders/{first}/ready", headers=cook(point))
    assert again.status_code == 409
    assert (await c.get(f"/internal/v1/food-points/{point}")).json()["active_orders"] == 0

    await kitchen.assigner.run_pass()
    assert await states(kitchen.db) == {first: "ready", second: "confirmed"}
    assert await pending_ids(kitchen.db) == set()


async def test_orders_refusing_ready_is_passed_on(kitchen: Kitchen) -> None:
    point = await kitchen.point()
    paid = await kitchen.paid()
    await kitchen.assigner.run_pass()
    kitchen.orders.status = 409
    refused = await kitchen.client.post(f"/api/v1/kitchen/orders/{paid}/ready", headers=cook(point))
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "illegal_transition")
    kitchen.orders.status, kitchen.orders.down = 200, True
    away = await kitchen.client.post(f"/api/v1/kitchen/orders/{paid}/ready", headers=cook(point))
    assert away.status_code == 503
    assert (await kitchen.client.get(f"/internal/v1/food-points/{point}")).json()["active_orders"] == 1


async def test_a_pushed_event_counts_once(kitchen: Kitchen) -> None:
    point = await kitchen.point()
    pending = order()
    event = envelope("paid", pending)
    first = await kitchen.client.post(EVENTS, json=event.model_dump(mode="json"))
    assert (first.status_code, first.json()) == (200, {"event_id": event.event_id, "status": "handled"})
    assert await pending_ids(kitchen.db) == {pending.order_id}
    await kitchen.assigner.run_pass()
    assert await states(kitchen.db) == {pending.order_id: "confirmed"}
    taken = await point_state(kitchen.db, point)

    # The same event again: the inbox recognises it, the answer is the same and nothing changes.
    again = await kitchen.client.post(EVENTS, json=event.model_dump(mode="json"))
    assert (again.status_code, again.json()) == (200, {"event_id": event.event_id, "status": "handled"})
    await kitchen.assigner.run_pass()
    assert await pending_ids(kitchen.db) == set()
    assert await states(kitchen.db) == {pending.order_id: "confirmed"}
    assert await point_state(kitchen.db, point) == taken
    assert kitchen.orders.of("assigned") == [("assigned", pending.order_id, point)]
    async with kitchen.db.connect() as conn:
        claimed = await conn.execute(
            text("SELECT count(*) FROM inbox WHERE consumer = :c AND event_id = :e"),
            {"c": CONSUMER, "e": uuid.UUID(event.event_id)},
        )
        assert claimed.scalar_one() == 1


async def test_a_malformed_order_event_is_not_handled_and_changes_nothing(kitchen: Kitchen) -> None:
    broken = envelope("paid", order())
    broken.payload = {"status": "paid"}
    answer = await kitchen.client.post(EVENTS, json=broken.model_dump(mode="json"))
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "event_not_handled")
    assert await pending_ids(kitchen.db) == set()
    async with kitchen.db.connect() as conn:
        claimed = await conn.execute(text("SELECT count(*) FROM inbox"))
        assert claimed.scalar_one() == 0  # rolled back with the failed effect: a retry can apply it
