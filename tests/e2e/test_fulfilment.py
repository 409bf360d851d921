"""Fulfilment over the gateway (ADR 000): assignment to the nearest able food point, the cook, the
courier, cancellation with refund, and who may do what."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.client import Api, eventually, order_status, wait_for_status
from tests.e2e.world import World

pytestmark = pytest.mark.e2e


@pytest.fixture
async def world(admin: Api) -> World:
    return await World.create(admin)


async def test_the_whole_lifecycle(api: Api, world: World) -> None:
    point = await world.food_point(1)
    cook = await world.staff("cook", point)
    courier = await world.staff("courier")
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer)
    assigned = await wait_for_status(customer, order["order_id"], "assigned")
    assert assigned["food_point_id"] == point

    queue = (await cook.get("/api/v1/kitchen/orders")).json()["items"]
    assert order["order_id"] in [item["order_id"] for item in queue]
    ready = await cook.post(f"/api/v1/kitchen/orders/{order['order_id']}/ready")
    assert ready.status_code == 200, ready.text
    await wait_for_status(customer, order["order_id"], "ready")
    assert order["order_id"] not in [
        i["order_id"] for i in (await cook.get("/api/v1/kitchen/orders")).json()["items"]
    ]

    lat, lon = world.spot(0)

    async def offered() -> bool:
        offers = (await courier.get("/api/v1/delivery/orders", params={"lat": lat, "lon": lon})).json()[
            "items"
        ]
        return order["order_id"] in [item["order_id"] for item in offers]

    await eventually(offered)
    taken = await courier.post(f"/api/v1/delivery/orders/{order['order_id']}/take")
    assert taken.status_code == 200, taken.text
    in_delivery = await wait_for_status(customer, order["order_id"], "in_delivery")
    assert in_delivery["courier"] == courier.username
    done = await courier.post(f"/api/v1/delivery/orders/{order['order_id']}/complete")
    assert done.status_code == 200, done.text
    completed = await wait_for_status(customer, order["order_id"], "completed")
    assert [h["status"] for h in completed["history"]] == [
        "created",
        "paid",
        "assigned",
        "ready",
        "in_delivery",
        "completed",
    ]

    async def letters() -> bool:
        kinds = sorted(
            n["kind"] for n in await customer.notifications() if n["order_id"] == order["order_id"]
        )
        return kinds == ["order_completed", "order_paid"]

    await eventually(letters)
    cancel = await customer.post(f"/api/v1/orders/{order['order_id']}/cancel")
    assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "illegal_transition"


async def test_nearest_eligible_point_wins_and_ineligible_nearer_ones_are_skipped(
    api: Api, world: World
) -> None:
    no_ingredient = await world.food_point(0.5, stock=None)
    await world.stock(no_ingredient, next(iter(world.ingredients)), 100)  # one ingredient only
    full = await world.food_point(1.0, capacity=0)
    closed = await world.food_point(1.5, accepts_delivery=False)
    nearest_able = await world.food_point(3.0)
    await world.food_point(6.0)  # able but farther
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer)
    assigned = await wait_for_status(customer, order["order_id"], "assigned")
    assert assigned["food_point_id"] == nearest_able
    assert assigned["food_point_id"] not in (no_ingredient, full, closed)


async def test_an_order_no_point_can_take_stays_paid_until_one_can(api: Api, world: World) -> None:
    point = await world.food_point(1, stock=None)
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer)
    await asyncio.sleep(1.5)
    assert await order_status(customer, order["order_id"]) == "paid"
    for ingredient in world.ingredients:
        await world.stock(point, ingredient, 10)
    assigned = await wait_for_status(customer, order["order_id"], "assigned")
    assert assigned["food_point_id"] == point


async def test_forty_orders_at_once_against_capacity_five(api: Api, world: World) -> None:
    point = await world.food_point(1, capacity=5, stock=1_000)
    cook = await world.staff("cook", point)
    customers = await asyncio.gather(*[api.new_customer(deposit=100_000) for _ in range(8)])
    orders = await asyncio.gather(*[world.order(customers[i % 8]) for i in range(40)])
    owner = {o["order_id"]: customers[i % 8] for i, o in enumerate(orders)}
    assert all(o["status"] in ("paid", "assigned") for o in orders)

    async def statuses() -> dict[str, str | None]:
        return {oid: await order_status(c, oid) for oid, c in owner.items()}

    async def five_assigned() -> bool:
        values = list((await statuses()).values())
        return values.count("assigned") == 5 and values.count("paid") == 35

    await eventually(five_assigned, timeout=30)
    await asyncio.sleep(1.0)  # nothing more may be squeezed in
    values = list((await statuses()).values())
    assert values.count("assigned") == 5 and values.count("paid") == 35
    queue = (await cook.get("/api/v1/kitchen/orders")).json()["items"]
    assert len(queue) == 5

    # As the cook finishes, the waiting orders take the freed slots, never more than five at a time.
    for item in queue[:3]:
        assert (await cook.post(f"/api/v1/kitchen/orders/{item['order_id']}/ready")).status_code == 200

    async def three_more_assigned() -> bool:
        values = list((await statuses()).values())
        return values.count("assigned") == 5 and values.count("ready") == 3 and values.count("paid") == 32

    await eventually(three_more_assigned, timeout=30)


async def test_illegal_steps_are_409(api: Api, world: World) -> None:
    point = await world.food_point(1, stock=None)  # nothing can be cooked yet: the order stays paid
    cook = await world.staff("cook", point)
    courier, other_courier = await world.staff("courier"), await world.staff("courier")
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer)
    oid = order["order_id"]
    assert (
        await cook.post(f"/api/v1/kitchen/orders/{oid}/ready")
    ).status_code == 409  # ready before assigned
    assert (await courier.post(f"/api/v1/delivery/orders/{oid}/take")).status_code == 409  # take before ready
    for ingredient in world.ingredients:
        await world.stock(point, ingredient, 10)
    await wait_for_status(customer, oid, "assigned")
    assert (await cook.post(f"/api/v1/kitchen/orders/{oid}/ready")).status_code == 200
    await wait_for_status(customer, oid, "ready")

    async def offered() -> bool:
        items = (await courier.get("/api/v1/delivery/orders")).json()["items"]
        return oid in [item["order_id"] for item in items]

    await eventually(offered)
    first, second = await asyncio.gather(
        courier.post(f"/api/v1/delivery/orders/{oid}/take"),
        other_courier.post(f"/api/v1/delivery/orders/{oid}/take"),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    winner, loser = (courier, other_courier) if first.status_code == 200 else (other_courier, courier)
    assert (await loser.post(f"/api/v1/delivery/orders/{oid}/complete")).status_code == 403
    assert (await winner.post(f"/api/v1/delivery/orders/{oid}/complete")).status_code == 200
    await wait_for_status(customer, oid, "completed")
    assert (await customer.post(f"/api/v1/orders/{oid}/cancel")).status_code == 409


async def test_who_may_do_what(api: Api, world: World) -> None:
    point = await world.food_point(1)
    other_point = await world.food_point(50)
    other_cook = await world.staff("cook", other_point)
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer)
    assigned = await wait_for_status(customer, order["order_id"], "assigned")
    assert assigned["food_point_id"] == point
    refused = await other_cook.post(f"/api/v1/kitchen/orders/{order['order_id']}/ready")
    assert refused.status_code == 403
    for method, path in [
        ("GET", "/api/v1/kitchen/orders"),
        ("POST", f"/api/v1/kitchen/orders/{order['order_id']}/ready"),
        ("GET", "/api/v1/delivery/orders"),
        ("POST", f"/api/v1/delivery/orders/{order['order_id']}/take"),
        ("POST", f"/api/v1/delivery/orders/{order['order_id']}/complete"),
        ("POST", "/api/v1/admin/food-points"),
        ("PATCH", f"/api/v1/admin/food-points/{point}"),
        ("PUT", f"/api/v1/admin/food-points/{point}/stock/bread"),
    ]:
        answer = await customer.call(method, path, json={})
        assert answer.status_code == 403, (method, path, answer.text)
    stranger = await api.new_customer()
    assert (await stranger.post(f"/api/v1/orders/{order['order_id']}/cancel")).status_code == 404


async def test_admin_patches_food_points(world: World) -> None:
    point = await world.food_point(1, capacity=2)
    patched = await world.admin.call(
        "PATCH", f"/api/v1/admin/food-points/{point}", json={"capacity": 7, "accepts_delivery": False}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["capacity"] == 7 and patched.json()["accepts_delivery"] is False
    bad = await world.admin.call("PATCH", f"/api/v1/admin/food-points/{point}", json={"capacity": -1})
    assert bad.status_code == 422
    negative = await world.admin.put(f"/api/v1/admin/food-points/{point}/stock/x", json={"quantity": -5})
    assert negative.status_code == 422


@pytest.mark.parametrize("when", ["paid", "assigned"])
async def test_cancel_refunds_and_tells_once(api: Api, world: World, when: str) -> None:
    if when == "assigned":
        await world.food_point(1)
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer, quantity=2)
    await wait_for_status(customer, order["order_id"], when)
    assert await customer.balance() == 60_000
    cancelled = await customer.post(f"/api/v1/orders/{order['order_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    async def refunded() -> bool:
        return await customer.balance() == 100_000

    await eventually(refunded)
    operations = await customer.operations()
    assert [op["kind"] for op in operations] == ["refund", "payment", "deposit"]
    assert operations[0]["amount"] == 40_000
    again = await customer.post(f"/api/v1/orders/{order['order_id']}/cancel")
    assert again.status_code in (200, 409)
    await asyncio.sleep(0.5)
    assert await customer.balance() == 100_000

    async def told() -> bool:
        kinds = sorted(
            n["kind"] for n in await customer.notifications() if n["order_id"] == order["order_id"]
        )
        return kinds == ["order_cancelled", "order_paid"]

    await eventually(told)
    final = await wait_for_status(customer, order["order_id"], "cancelled")
    assert final["history"][-1]["status"] == "cancelled"
