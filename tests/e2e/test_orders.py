"""The hybrid order flow over the gateway: priced by the server, paid once, told once, read back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.e2e.client import Api, eventually

pytestmark = pytest.mark.e2e


def line(item: dict[str, Any], quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"menu_item_id": item["id"], "quantity": quantity, **extra}


async def kinds_for(customer: Api, order_id: str) -> list[str]:
    return [n["kind"] for n in await customer.notifications() if n.get("order_id") == order_id]


async def test_menu_lists_items_with_recipes(api: Api, sandwich_item: dict[str, Any]) -> None:
    customer = await api.new_customer()
    menu = (await customer.get("/api/v1/menu")).json()["items"]
    mine = next(item for item in menu if item["id"] == sandwich_item["id"])
    assert mine["price"] == 35000 and mine["ingredients"] == sandwich_item["ingredients"]
    assert [i["quantity"] for i in mine["ingredients"]] == [2, 1]


async def test_only_admins_create_menu_items(api: Api) -> None:
    customer = await api.new_customer()
    answer = await customer.post("/api/v1/admin/menu", json={"name": "Hack", "price": 1, "ingredients": []})
    assert answer.status_code == 403


async def test_order_is_paid_once_and_told_once_even_when_repeated(
    api: Api, sandwich_item: dict[str, Any]
) -> None:
    customer = await api.new_customer(deposit=100_000)
    key = uuid.uuid4().hex
    answers = await asyncio.gather(
        *[customer.place_order([line(sandwich_item, 2)], key=key) for _ in range(3)]
    )
    assert {a.status_code for a in answers} == {customer.accepted_status}, [a.text for a in answers]
    assert len({a.json()["order_id"] for a in answers}) == 1
    order = await customer.settled(answers[0])
    assert order["status"] == "paid" and order["total"] == 70_000 and order["payment_operation_id"]
    assert order["items"] == [
        {"menu_item_id": sandwich_item["id"], "name": sandwich_item["name"], "quantity": 2, "price": 35000}
    ]
    again = await customer.place_order([line(sandwich_item, 2)], key=key)
    assert again.json()["order_id"] == order["order_id"]

    payments = [op for op in await customer.operations() if op["kind"] == "payment"]
    assert len(payments) == 1 and payments[0]["amount"] == 70_000
    assert await customer.balance() == 30_000

    async def told() -> bool:
        return await kinds_for(customer, order["order_id"]) == ["order_paid"]

    await eventually(told)
    await asyncio.sleep(1.0)  # a late duplicate would show up now
    assert await kinds_for(customer, order["order_id"]) == ["order_paid"]


async def test_same_key_with_another_order_is_409(api: Api, sandwich_item: dict[str, Any]) -> None:
    customer = await api.new_customer(deposit=100_000)
    key = uuid.uuid4().hex
    assert (
        await customer.place_order([line(sandwich_item, 1)], key=key)
    ).status_code == customer.accepted_status
    other = await customer.place_order([line(sandwich_item, 2)], key=key)
    await customer.refused(other, 409, "idempotency_key_reused")


async def test_prices_come_from_the_menu_whatever_the_client_sends(
    api: Api, sandwich_item: dict[str, Any]
) -> None:
    customer = await api.new_customer(deposit=100_000)
    answer = await customer.place_order([line(sandwich_item, 1, price=1, name="Free lunch")])
    order = await customer.settled(answer)
    assert order["total"] == 35_000 and order["items"][0]["name"] == sandwich_item["name"]


async def test_unknown_menu_item_is_422_and_charges_nothing(api: Api) -> None:
    customer = await api.new_customer(deposit=100_000)
    answer = await customer.place_order([{"menu_item_id": str(uuid.uuid4()), "quantity": 1}])
    await customer.refused(answer, 422, "unknown_menu_item")
    assert await customer.balance() == 100_000


async def test_not_enough_money_fails_payment_without_a_charge(
    api: Api, sandwich_item: dict[str, Any]
) -> None:
    customer = await api.new_customer(deposit=10_000)
    answer = await customer.place_order([line(sandwich_item, 1)], key=uuid.uuid4().hex)
    order = await customer.settled(answer)
    assert order["status"] == "payment_failed" and order["payment_operation_id"] is None
    assert await customer.balance() == 10_000
    assert [op["kind"] for op in await customer.operations()] == ["deposit"]

    async def told() -> bool:
        return await kinds_for(customer, order["order_id"]) == ["order_payment_failed"]

    await eventually(told)


async def test_orders_are_read_back_with_history(api: Api, sandwich_item: dict[str, Any]) -> None:
    customer = await api.new_customer(deposit=100_000)
    first = await customer.settled(await customer.place_order([line(sandwich_item, 1)]))
    second = await customer.settled(await customer.place_order([line(sandwich_item, 1)]))

    async def listed() -> bool:
        answer = await customer.get("/api/v1/orders")
        ids = [o["order_id"] for o in answer.json()["items"]]
        return ids[:2] == [second["order_id"], first["order_id"]]

    await eventually(listed)
    detail = await customer.get(f"/api/v1/orders/{first['order_id']}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["status"] == "paid" and body["total"] == 35_000 and body["username"] == customer.username
    assert [h["status"] for h in body["history"]] == ["created", "paid"]


async def test_someone_elses_order_is_404(api: Api, sandwich_item: dict[str, Any]) -> None:
    owner = await api.new_customer(deposit=100_000)
    stranger = await api.new_customer()
    order = await owner.settled(await owner.place_order([line(sandwich_item, 1)]))

    async def visible_to_owner() -> bool:
        return (await owner.get(f"/api/v1/orders/{order['order_id']}")).status_code == 200

    await eventually(visible_to_owner)
    answer = await stranger.get(f"/api/v1/orders/{order['order_id']}")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "order_not_found"
    assert order["order_id"] not in [
        o["order_id"] for o in (await stranger.get("/api/v1/orders")).json()["items"]
    ]
    assert (await stranger.get("/api/v1/orders/not-a-uuid")).status_code == 404
