"""What every bus adapter shares, without a broker: the topics `ensure_topics` creates, the check of
`subscribe`'s arguments, and what a group member does with a message (`GroupMember._settle`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from sandwich.platform.bus.base import (
    DLQ_HEADER_ATTEMPTS,
    DLQ_HEADER_GROUP,
    BusUnavailable,
    EventBus,
    Membership,
    Message,
    Subscription,
    with_dead_letters,
)
from sandwich.platform.bus.group_member import GroupMember

pytestmark = pytest.mark.unit


class RecordingBus(EventBus):
    """Stores what is published (the dead letters); refuses the first `refusals` publishes."""

    name = "recording"

    def __init__(self, refusals: int = 0) -> None:
        self.published: list[Message] = []
        self.joined: list[Membership] = []
        self.refusals = refusals

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ensure_topics(self, topics: list[str]) -> None:
        return None

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        if self.refusals:
            self.refusals -= 1
            raise BusUnavailable("away")
        self.published.append(Message(topic, key, value, headers or {}))

    async def _join(self, membership: Membership) -> Subscription:
        self.joined.append(membership)
        return Member(self, membership, handler_timeout_seconds=None, log=structlog.get_logger("test"))

    async def healthy(self) -> bool:
        return True


class Member(GroupMember):
    async def stop(self) -> None:
        self._stopping.set()


def member(bus: RecordingBus, handler: Any, max_attempts: int = 3, backoff: float = 0.001) -> Member:
    membership = Membership("order.events", "kitchen", handler, max_attempts, backoff)
    return Member(bus, membership, handler_timeout_seconds=None, log=structlog.get_logger("test"))


def test_every_topic_gets_its_dead_letter_topic_once_and_a_dead_letter_topic_none() -> None:
    assert with_dead_letters(["a", "b.dlq", "a", "c"]) == ["a", "a.dlq", "b.dlq", "c", "c.dlq"]


async def test_subscribe_checks_its_arguments_once_for_every_adapter() -> None:
    bus = RecordingBus()

    async def handler(message: Message) -> None:
        return None

    with pytest.raises(ValueError, match="max_attempts"):
        await bus.subscribe("order.events", "kitchen", handler, max_attempts=0)
    await bus.subscribe("order.events", "kitchen", handler, kinds=["paid"])
    assert bus.joined == [Membership("order.events", "kitchen", handler, 5, 0.2, ["paid"])]


async def test_a_handled_message_may_be_acknowledged() -> None:
    seen: list[int] = []

    async def handler(message: Message) -> None:
        seen.append(message.delivery_attempt)
        if len(seen) < 2:
            raise RuntimeError("not yet")

    bus = RecordingBus()
    assert await member(bus, handler)._settle(Message("order.events", "o-1", b"{}")) is True
    assert seen == [1, 2] and bus.published == []


async def test_a_message_its_handler_gives_up_on_is_parked_then_may_be_acknowledged() -> None:
    async def handler(message: Message) -> None:
        raise RuntimeError("cannot parse")

    bus = RecordingBus(refusals=1)  # the broker is away once: the dead letter waits for it
    assert await member(bus, handler)._settle(Message("order.events", "o-1", b"{}")) is True
    [parked] = bus.published
    assert (parked.topic, parked.key, parked.value) == ("order.events.dlq", "o-1", b"{}")
    assert parked.headers[DLQ_HEADER_GROUP] == "kitchen" and parked.headers[DLQ_HEADER_ATTEMPTS] == "3"


async def test_a_stopping_member_leaves_the_message_unacknowledged() -> None:
    async def handler(message: Message) -> None:
        raise RuntimeError("busy")

    stopping = member(RecordingBus(), handler, max_attempts=5, backoff=5.0)
    settling = asyncio.create_task(stopping._settle(Message("order.events", "o-1", b"{}")))
    await asyncio.sleep(0.01)
    await stopping.stop()
    assert await settling is False
