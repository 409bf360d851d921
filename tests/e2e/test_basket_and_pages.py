"""The basket, ordering it, and the orders page that still answers when a part of it is down."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from sandwich.supervisor import Platform
from tests.e2e.client import Api, eventually

pytestmark = pytest.mark.e2e

DELIVERY = {"address": "Tverskaya 1", "lat": 55.757, "lon": 37.615}


async def test_basket_is_ordered_and_emptied_once_paid(api: Api, sandwich_item: dict[str, Any]) -> None:
    customer = await api.new_customer(deposit=200_000)
    item_id = sandwich_item["id"]
    put = await customer.put(f"/api/v1/basket/items/{item_id}", json={"quantity": 2})
    assert put.status_code == 200, put.text
    basket = (await customer.get("/api/v1/basket")).json()
    assert basket["items"][0]["menu_item_id"] == item_id and basket["items"][0]["quantity"] == 2
    assert basket["total"] == 70_000

    order = await customer.post(
        "/api/v1/order", json={"delivery": DELIVERY}, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    settled = await customer.settled(order)
    assert settled["status"] == "paid" and settled["total"] == 70_000

    async def emptied() -> bool:
        return (await customer.get("/api/v1/basket")).json()["items"] == []

    await eventually(emptied)
    empty = await customer.post("/api/v1/order", json={"delivery": DELIVERY})
    await customer.refused(empty, 422, "basket_empty")


async def test_basket_refuses_unknown_items_and_bad_quantities(
    api: Api, sandwich_item: dict[str, Any]
) -> None:
    customer = await api.new_customer()
    assert (
        await customer.put(f"/api/v1/basket/items/{uuid.uuid4()}", json={"quantity": 1})
    ).status_code == 404
    assert (await customer.put("/api/v1/basket/items/not-an-id", json={"quantity": 1})).status_code in (
        404,
        422,
    )
    for quantity in (-1, 51, 1.5, "2"):
        answer = await customer.put(
            f"/api/v1/basket/items/{sandwich_item['id']}", json={"quantity": quantity}
        )
        assert answer.status_code == 422, (quantity, answer.text)
    await customer.put(f"/api/v1/basket/items/{sandwich_item['id']}", json={"quantity": 3})
    removed = await customer.put(f"/api/v1/basket/items/{sandwich_item['id']}", json={"quantity": 0})
    assert removed.status_code == 200 and removed.json()["items"] == []


async def test_orders_page_in_one_call(api: Api, sandwich_item: dict[str, Any]) -> None:
    customer = await api.new_customer(deposit=100_000)
    await customer.put(f"/api/v1/basket/items/{sandwich_item['id']}", json={"quantity": 1})
    page = await customer.get("/api/v1/pages/orders")
    assert page.status_code == 200
    body = page.json()
    assert body["user"]["username"] == customer.username
    assert body["basket"]["items"][0]["menu_item_id"] == sandwich_item["id"]
    assert any(item["id"] == sandwich_item["id"] for item in body["menu"]["items"])
    assert body["orders"]["items"] == [] and body["unavailable"] == []


async def test_orders_page_marks_a_missing_part_when_its_service_is_down(
    api: Api, platform: Platform
) -> None:
    customer = await api.new_customer()
    await asyncio.to_thread(platform.kill_service, "basket")
    try:
        page = await customer.get("/api/v1/pages/orders")
        assert page.status_code == 200
        body = page.json()
        assert body["basket"] is None and body["unavailable"] == ["basket"]
        assert body["user"]["username"] == customer.username and body["menu"] is not None
    finally:
        await asyncio.to_thread(platform.start_service, "basket")
