"""The Notifier with a fake delivery: order, folding, retries and the cap on what waits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sandwich.platform import pg_notify
from sandwich.platform.pg_notify import Notification, Notifier

pytestmark = pytest.mark.unit


class FakeDelivery:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[list[Notification]] = []

    async def __call__(self, batch: Sequence[Notification]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server away")
        self.batches.append(list(batch))


async def settle(notifier: Notifier, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while notifier.waiting:
            await asyncio.sleep(0.005)


async def test_notifications_go_in_order_and_equal_ones_waiting_together_once() -> None:
    delivery = FakeDelivery()
    notifier = Notifier(delivery)
    notifier.send([("c", "1"), ("c", "2"), ("c", "1"), ("d", "")])
    await settle(notifier)
    await notifier.close()
    assert delivery.batches == [[("c", "1"), ("c", "2"), ("d", "")]]


async def test_a_failed_delivery_keeps_its_notifications_and_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pg_notify, "RETRY_SECONDS", 0.01)
    delivery = FakeDelivery(failures=2)
    notifier = Notifier(delivery)
    notifier.send([("c", "1")])
    await settle(notifier)
    notifier.send([("c", "2")])
    await settle(notifier)
    await notifier.close()
    assert delivery.batches == [[("c", "1")], [("c", "2")]]


async def test_while_the_server_is_away_the_oldest_go_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_notify, "MAX_WAITING", 3)
    monkeypatch.setattr(pg_notify, "RETRY_SECONDS", 0.01)
    delivery = FakeDelivery(failures=1)
    notifier = Notifier(delivery)
    notifier.send([("c", str(n)) for n in range(5)])
    await settle(notifier)
    await notifier.close()
    assert [n for batch in delivery.batches for n in batch] == [("c", "2"), ("c", "3"), ("c", "4")]


async def test_close_sends_what_waits_and_a_notifier_with_nothing_closes_at_once() -> None:
    delivery = FakeDelivery()
    idle = Notifier(delivery)
    await idle.close()
    notifier = Notifier(delivery)
    notifier.send([("c", "last")])
    await notifier.close()
    assert delivery.batches == [[("c", "last")]] and notifier.waiting == 0
