"""Billing over the gateway: deposits are idempotent, amounts are checked, the ledger adds up."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.e2e.client import Api

pytestmark = pytest.mark.e2e


async def test_deposit_with_the_same_key_happens_once(api: Api) -> None:
    customer = await api.new_customer()
    key = uuid.uuid4().hex
    answers = await asyncio.gather(
        *[
            customer.post(
                "/api/v1/billing/account/deposit", json={"amount": 5000}, headers={"Idempotency-Key": key}
            )
            for _ in range(5)
        ]
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["operation_id"] for a in answers}) == 1
    first = answers[0].json()
    assert first["kind"] == "deposit" and first["amount"] == 5000 and first["balance_after"] == 5000
    assert await customer.balance() == 5000
    assert len(await customer.operations()) == 1


async def test_same_key_other_body_is_409(api: Api) -> None:
    customer = await api.new_customer()
    key = uuid.uuid4().hex
    first = await customer.post(
        "/api/v1/billing/account/deposit", json={"amount": 100}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == 201
    other = await customer.post(
        "/api/v1/billing/account/deposit", json={"amount": 200}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert await customer.balance() == 100


async def test_keys_are_per_user(api: Api) -> None:
    alice, bob = await api.new_customer(), await api.new_customer()
    key = uuid.uuid4().hex
    for customer in (alice, bob):
        answer = await customer.post(
            "/api/v1/billing/account/deposit", json={"amount": 700}, headers={"Idempotency-Key": key}
        )
        assert answer.status_code == 201
    assert await alice.balance() == 700 and await bob.balance() == 700


@pytest.mark.parametrize("amount", [0, -1, 10_000_001, 1.5, "100", None, True])
async def test_invalid_amounts_are_422(api: Api, amount: object) -> None:
    customer = await api.new_customer()
    answer = await customer.post("/api/v1/billing/account/deposit", json={"amount": amount})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_field"
    assert await customer.balance() == 0


async def test_operations_newest_first_and_sum_to_balance(api: Api) -> None:
    customer = await api.new_customer()
    for amount in (100, 250, 10_000_000):
        answer = await customer.post("/api/v1/billing/account/deposit", json={"amount": amount})
        assert answer.status_code == 201
    operations = await customer.operations()
    assert [op["amount"] for op in operations] == [10_000_000, 250, 100]
    assert operations[0]["balance_after"] == await customer.balance() == 10_000_350
