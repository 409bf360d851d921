"""Two processes of each consuming service in one Kafka consumer group, one of them restarted while
orders flow: the group rebalances its partitions, and still every order's events are applied in
order, no letter goes out twice and no order is left unfinished."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import pytest

from sandwich.platform.settings import Broker
from sandwich.supervisor import Platform
from tests.e2e.client import Api, eventually, order_status
from tests.e2e.test_faults import letters_about
from tests.e2e.world import World

pytestmark = pytest.mark.e2e

CONSUMERS = ("order_info", "notifications", "kitchen")
ORDERS = 48
LIFECYCLE = ["created", "paid", "assigned"]


async def place(customer: Api, world: World) -> str:
    lat, lon = world.spot(0.5)
    answer = await customer.post(
        "/api/v1/order",
        json={
            "items": [{"menu_item_id": world.item["id"], "quantity": 1}],
            "delivery": {"address": "the group's street", "lat": lat, "lon": lon},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert answer.status_code == customer.accepted_status, answer.text
    order_id: str = answer.json()["order_id"]
    return order_id


async def restart_one_of_each(platform: Platform, replicas: list[str]) -> None:
    """While orders flow: the second process of each consumer is stopped (SIGTERM: it leaves the
    group) and started again (it joins), one after the other: each step is a rebalance."""
    for name in replicas:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(platform.restart_service, name)


async def test_two_members_per_group_through_a_restart_apply_every_order_once_and_in_order(
    api: Api, admin: Api, platform: Platform
) -> None:
    if platform.broker_kind is not Broker.KAFKA:
        pytest.skip(
            f"{platform.flow.value} on {platform.broker_kind.value}: partitioned consumer groups are Kafka's"
        )
    world = await World.create(admin)
    await world.food_point(0, capacity=1_000, stock=10_000)
    replicas = [await asyncio.to_thread(platform.add_replica, name) for name in CONSUMERS]
    try:
        customers = await asyncio.gather(*[api.new_customer(deposit=1_000_000) for _ in range(8)])
        owner: dict[str, Api] = {}

        async def order_flow() -> None:
            for i in range(ORDERS):
                customer = customers[i % len(customers)]
                owner[await place(customer, world)] = customer
                await asyncio.sleep(0.15)

        await asyncio.gather(order_flow(), restart_one_of_each(platform, replicas))
        assert len(owner) == ORDERS

        async def all_assigned() -> bool:
            statuses = [await order_status(customer, order_id) for order_id, customer in owner.items()]
            return all(status == "assigned" for status in statuses)

        await eventually(all_assigned, timeout=90, interval=0.5)
        for order_id, customer in owner.items():
            order: dict[str, Any] = (await customer.get(f"/api/v1/orders/{order_id}")).json()
            statuses = [entry["status"] for entry in order["history"]]
            moments = [entry["at"] for entry in order["history"]]
            assert statuses == LIFECYCLE, (order_id, order["history"])
            assert moments == sorted(moments), (order_id, order["history"])

        async def every_letter_recorded() -> bool:
            kinds: dict[str, list[str]] = {}
            for customer in customers:
                for note in await customer.notifications():
                    kinds.setdefault(note["order_id"], []).append(note["kind"])
            return all(kinds.get(order_id) == ["order_paid"] for order_id in owner)

        await eventually(every_letter_recorded, timeout=60, interval=0.5)

        async def every_letter_sent() -> bool:  # a stopped member hands its unsent letters back
            return 0 not in letters_about(platform, set(owner)).values()

        await eventually(every_letter_sent, timeout=30, interval=0.5)
        await asyncio.sleep(1.0)  # a letter sent twice would have reached the sink by now
        letters = letters_about(platform, set(owner))
        assert set(letters.values()) == {1}, {o: n for o, n in letters.items() if n != 1}
    finally:
        for name in replicas:
            await asyncio.to_thread(platform.kill_service, name, signal.SIGTERM)
