"""Money under concurrency: many orders at once, each sent twice, never overdraw or double-charge."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.e2e.client import Api

pytestmark = pytest.mark.e2e

USERS = 10
ORDERS_PER_USER = 8
AFFORDABLE = 2


async def test_ten_users_eight_orders_each_with_money_for_two(
    api: Api, sandwich_item: dict[str, Any]
) -> None:
    price = int(sandwich_item["price"])  # type: ignore[arg-type]
    customers = await asyncio.gather(*[api.new_customer(deposit=price * AFFORDABLE) for _ in range(USERS)])
    line = [{"menu_item_id": sandwich_item["id"], "quantity": 1}]

    async def place_twice(customer: Api) -> list[dict[str, Any]]:
        keys = [uuid.uuid4().hex for _ in range(ORDERS_PER_USER)]
        requests = [customer.place_order(line, key=key) for key in keys for _ in range(2)]
        answers = await asyncio.gather(*requests)
        assert all(a.status_code == customer.accepted_status for a in answers), [
            a.text for a in answers if a.status_code != customer.accepted_status
        ]
        by_key: dict[str, set[str]] = {}
        for key, answer in zip([k for k in keys for _ in range(2)], answers, strict=True):
            by_key.setdefault(key, set()).add(answer.json()["order_id"])
        assert all(len(ids) == 1 for ids in by_key.values()), "a repeated request created a second order"
        return [await customer.settled(a) for a in answers]

    results = await asyncio.gather(*[place_twice(c) for c in customers])
    for customer, answers in zip(customers, results, strict=True):
        final = {a["order_id"]: a["status"] for a in answers}
        assert len(final) == ORDERS_PER_USER
        statuses = sorted(final.values())
        assert statuses.count("paid") == AFFORDABLE, statuses
        assert statuses.count("payment_failed") == ORDERS_PER_USER - AFFORDABLE, statuses
        operations = await customer.operations()
        assert all(op["balance_after"] >= 0 for op in operations)
        ledger = sum(
            op["amount"] if op["kind"] in ("deposit", "refund") else -op["amount"] for op in operations
        )
        balance = await customer.balance()
        assert balance == ledger == 0
        assert len([op for op in operations if op["kind"] == "payment"]) == AFFORDABLE
