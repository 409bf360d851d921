"""Following an order live (Server-Sent Events), rebuilding the read model, and `sandwich demo`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from sandwich.supervisor import Platform
from tests.e2e.client import Api, eventually, wait_for_status
from tests.e2e.world import World

pytestmark = pytest.mark.e2e


async def test_status_changes_stream_as_server_sent_events(api: Api, admin: Api) -> None:
    world = await World.create(admin)
    point = await world.food_point(1, stock=None)
    cook = await world.staff("cook", point)
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer)
    await wait_for_status(customer, order["order_id"], "paid")
    seen: list[str] = []

    async def follow() -> None:
        async with customer.client.stream(
            "GET", f"/api/v1/orders/{order['order_id']}/events", headers=customer.auth, timeout=30
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:])["status"])
                    if seen[-1] == "ready":
                        return

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.5)
    for ingredient in world.ingredients:
        await world.stock(point, ingredient, 10)
    await wait_for_status(customer, order["order_id"], "assigned")
    assert (await cook.post(f"/api/v1/kitchen/orders/{order['order_id']}/ready")).status_code == 200
    await asyncio.wait_for(follower, 20)
    assert seen == ["paid", "assigned", "ready"]
    stranger = await api.new_customer()
    assert (await stranger.get(f"/api/v1/orders/{order['order_id']}/events")).status_code == 404


async def test_a_crowd_of_followers_leaves_the_gateway_free_for_requests(
    api: Api, admin: Api, platform: Platform
) -> None:
    """150 clients follow one order (a food point without ingredients keeps it `paid`): more than
    the gateway's request connections to order_info (100), which the streams must not take."""
    world = await World.create(admin)
    await world.food_point(1, stock=None)
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer)
    await wait_for_status(customer, order["order_id"], "paid")
    path = f"/api/v1/orders/{order['order_id']}/events"
    followers = 150
    opened = asyncio.Semaphore(0)

    async def follow(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", path, headers=customer.auth) as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    assert json.loads(line[5:])["status"] == "paid"
                    opened.release()
            # held open until cancelled

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=60.0, limits=limits) as crowd:
        streams = [asyncio.create_task(follow(crowd)) for _ in range(followers)]
        try:
            for _ in range(followers):
                await asyncio.wait_for(opened.acquire(), 30)
            assert not any(s.done() for s in streams)
            answer = await asyncio.wait_for(customer.get(f"/api/v1/orders/{order['order_id']}"), 5)
            assert answer.status_code == 200 and answer.json()["status"] == "paid"
        finally:
            for s in streams:
                s.cancel()
            await asyncio.gather(*streams, return_exceptions=True)


def _sandwich(*args: str, platform: Platform) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandwich.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **platform._env},
    )


async def test_replay_rebuilds_the_same_read_model(
    api: Api, platform: Platform, sandwich_item: dict[str, Any]
) -> None:
    if api.flow == "sync":
        pytest.skip("the sync flow has no broker: no event stream is retained to replay")
    customer = await api.new_customer(deposit=100_000)
    settled: dict[str, str] = {}
    for _ in range(3):
        order = await customer.settled(
            await customer.place_order([{"menu_item_id": sandwich_item["id"], "quantity": 1}])
        )
        await customer.seen_in_read_model(order)
        settled[order["order_id"]] = order["status"]

    async def listed_as_settled() -> bool:
        # The list is the read model alone: wait until it holds every order at its outcome (a
        # consumer on Kafka may apply the last event a moment after the order page showed it).
        items = (await customer.get("/api/v1/orders")).json()["items"]
        return {o["order_id"]: o["status"] for o in items} == settled

    await eventually(listed_as_settled, timeout=20, interval=0.1)
    before = (await customer.get("/api/v1/orders")).json()
    details_before = [(await customer.get(f"/api/v1/orders/{o['order_id']}")).json() for o in before["items"]]
    result = await asyncio.to_thread(
        _sandwich, "replay", "order_info", "--data-dir", str(platform.data_dir), platform=platform
    )
    assert result.returncode == 0, result.stdout + result.stderr
    after = (await customer.get("/api/v1/orders")).json()
    details_after = [(await customer.get(f"/api/v1/orders/{o['order_id']}")).json() for o in after["items"]]
    assert after == before and details_after == details_before


async def test_sandwich_demo_walks_to_completed(platform: Platform) -> None:
    from sandwich.cli.demo_world import load_or_create_credentials, seed_demo_world

    credentials = load_or_create_credentials(platform.data_dir, platform._env)
    await asyncio.to_thread(seed_demo_world, platform.gateway_url, credentials)
    result = await asyncio.to_thread(
        _sandwich,
        "demo",
        "--url",
        platform.gateway_url,
        "--data-dir",
        str(platform.data_dir),
        platform=platform,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    for status in ("created", "paid", "assigned", "ready", "in_delivery", "completed", "order_completed"):
        assert status in output, status
