"""Faults injected into the running platform: nothing paid is lost and nothing is told twice."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sandwich.platform.embedded.mailsink import read_mails
from sandwich.services.notifications.storage import LEASE_SECONDS
from sandwich.supervisor import Platform
from tests.e2e.client import Api, eventually

pytestmark = pytest.mark.e2e


def letters_about(platform: Platform, order_ids: set[str]) -> dict[str, int]:
    counts = dict.fromkeys(order_ids, 0)
    for mail in read_mails(platform.mail_dir):
        text = f"{mail['Subject']}\n{mail.get_body(('plain',)).get_content() if mail.get_body(('plain',)) else mail.get_payload()}"  # type: ignore[union-attr]
        for order_id in order_ids:
            if order_id in text:
                counts[order_id] += 1
    return counts


async def test_notifications_killed_while_orders_are_placed(
    api: Api, platform: Platform, sandwich_item: dict[str, Any]
) -> None:
    """hybrid/async: creation never notices. sync (ADR 004): a request that cannot tell notifications
    fails with 503 `downstream_unavailable`, its order already paid; the same request again, once
    notifications is back, returns that order. Either way: one happy letter per paid order."""
    customer = await api.new_customer(deposit=35_000 * 50)
    line = [{"menu_item_id": sandwich_item["id"], "quantity": 1}]
    semaphore = asyncio.Semaphore(10)
    keys = [f"kill-{i}-{sandwich_item['id']}" for i in range(50)]

    answered = 0

    async def place(key: str) -> Any:
        nonlocal answered
        async with semaphore:
            answer = await customer.place_order(line, key=key)
            answered += 1
            return answer

    placing = [asyncio.create_task(place(key)) for key in keys]
    while answered < 5:
        await asyncio.sleep(0.005)
    await asyncio.to_thread(platform.kill_service, "notifications")  # SIGKILL, mid-stream
    assert answered < 50
    answers = await asyncio.gather(*placing)
    refused = [key for key, a in zip(keys, answers, strict=True) if a.status_code == 503]
    if api.flow == "sync":
        assert refused, "sync couples creation to notifications: some requests must have failed"
        assert all(
            answers[keys.index(k)].json()["error"]["code"] == "downstream_unavailable" for k in refused
        )
    else:
        assert not refused, "hybrid and async create orders without notifications"
    await asyncio.to_thread(platform.start_service, "notifications")
    retried = {key: await customer.place_order(line, key=key) for key in refused}
    final = [answers[i] if keys[i] not in retried else retried[keys[i]] for i in range(50)]
    orders = [await customer.settled(answer) for answer in final]

    paid = {o["order_id"] for o in orders if o["status"] == "paid"}
    assert len(paid) == 50

    async def every_order_told_once() -> bool:
        kinds: dict[str, list[str]] = {}
        for n in await customer.notifications():
            kinds.setdefault(n["order_id"], []).append(n["kind"])
        return all(kinds.get(order_id) == ["order_paid"] for order_id in paid)

    await eventually(every_order_told_once, timeout=60)

    async def every_letter_sent() -> bool:
        return set(letters_about(platform, paid).values()) == {1}

    await eventually(every_letter_sent, timeout=LEASE_SECONDS + 30)  # taken, then lost with the process

    async def every_notification_marked_sent() -> bool:
        notifications = await customer.notifications()
        return len(notifications) == 50 and all(n["status"] == "sent" for n in notifications)

    # A letter the killed process had sent but not yet recorded as sent is sent again once its lease
    # runs out, with the same Message-ID (the sink keeps one copy): only then is it marked `sent`.
    await eventually(every_notification_marked_sent, timeout=LEASE_SECONDS + 30)
    payments = [op for op in await customer.operations() if op["kind"] == "payment"]
    assert len(payments) == 50


async def test_broker_down_hybrid_takes_orders_and_events_arrive_later(
    api: Api, platform: Platform, sandwich_item: dict[str, Any]
) -> None:
    """ADR 003: the outbox keeps what the broker cannot take; orders are paid over HTTP meanwhile."""
    if api.flow != "hybrid":
        pytest.skip(
            "sync runs without a broker"
            if api.flow == "sync"
            else "async takes no order with its broker down (the next test shows it)"
        )
    customer = await api.new_customer(deposit=35_000 * 200)
    line = [{"menu_item_id": sandwich_item["id"], "quantity": 1}]
    await asyncio.to_thread(platform.stop_broker)
    placed: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 10
        i = 0
        while time.monotonic() < deadline:
            answer = await customer.place_order(line, key=f"broker-down-{i}-{sandwich_item['id']}")
            assert answer.status_code == 201, answer.text
            assert answer.json()["status"] == "paid"
            placed.append(answer.json())
            i += 1
            await asyncio.sleep(0.25)
    finally:
        await asyncio.to_thread(platform.start_broker)
    assert len(placed) >= 10
    order_ids = {o["order_id"] for o in placed}

    async def read_model_has_all() -> bool:
        answer = await customer.get("/api/v1/orders", params={"limit": 200})
        seen = {o["order_id"]: o["status"] for o in answer.json()["items"]}
        return all(seen.get(order_id) == "paid" for order_id in order_ids)

    await eventually(read_model_has_all, timeout=90, interval=0.5)

    async def all_told_once() -> bool:
        kinds: dict[str, list[str]] = {}
        for n in await customer.notifications():
            kinds.setdefault(n["order_id"], []).append(n["kind"])
        return all(kinds.get(order_id) == ["order_paid"] for order_id in order_ids)

    await eventually(all_told_once, timeout=60, interval=0.5)


async def test_broker_down_async_refuses_orders_within_two_seconds_and_takes_none(
    api: Api, platform: Platform, sandwich_item: dict[str, Any]
) -> None:
    """ADR 002: "a broker failure stops all work". The gateway publishes the order request itself:
    with the broker down it answers 503 broker_unavailable within 2 s and nothing is ordered; once
    the broker is back the same request (same Idempotency-Key) goes through, once."""
    if api.flow != "async":
        pytest.skip(
            "sync runs without a broker"
            if api.flow == "sync"
            else "hybrid keeps taking orders with its broker down (the test before shows it)"
        )
    customer = await api.new_customer(deposit=35_000 * 10)
    line = [{"menu_item_id": sandwich_item["id"], "quantity": 1}]
    await asyncio.to_thread(platform.stop_broker)
    try:
        for i in range(5):
            began = time.monotonic()
            answer = await customer.place_order(line, key=f"refused-{i}")
            took = time.monotonic() - began
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "broker_unavailable"
            assert took < 2.0, f"the 503 took {took:.2f}s"
    finally:
        await asyncio.to_thread(platform.start_broker)

    async def taken_again() -> bool:
        return (await customer.place_order(line, key="refused-0")).status_code == 202

    await eventually(taken_again, timeout=60, interval=0.5)
    again = await customer.place_order(line, key="refused-0")
    order = await customer.settled(again)
    assert order["status"] == "paid"
    await asyncio.sleep(1.0)  # a request refused above and stored after all would show up now
    listed = (await customer.get("/api/v1/orders")).json()["items"]
    assert [o["order_id"] for o in listed] == [order["order_id"]]
    assert [op["kind"] for op in await customer.operations()] == ["payment", "deposit"]
