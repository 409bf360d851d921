"""Brokers and bus factories for the bus contract suite.

Each adapter runs against a real broker: NATS at $NATS_URL or an embedded nats-server, Kafka at
$KAFKA_BOOTSTRAP_SERVERS or an embedded Apache Kafka (the session fixtures `nats_url` and `kafka_bootstrap` of
tests/conftest.py). Both brokers are started once per session; every test
gets a topic prefix of its own, so tests (and runs sharing an external broker) never see each
other's messages.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandwich.platform.bus.base import EventBus, Message
from sandwich.platform.bus.kafka import KafkaBus
from sandwich.platform.bus.nats import NatsBus
from sandwich.platform.embedded.apache_kafka import EmbeddedApacheKafka
from sandwich.platform.embedded.brokers import EmbeddedNats

ADAPTERS = ("nats", "kafka")


class BusMaker:
    """Makes started buses of one adapter with the test's own topic prefix, and closes them after."""

    def __init__(self, adapter: str, address: str) -> None:
        self.adapter = adapter
        self.address = address
        self.prefix = f"t{uuid.uuid4().hex[:12]}."
        self.buses: list[EventBus] = []

    def make(
        self, *, address: str | None = None, shutdown_grace_seconds: float = 5.0, **options: Any
    ) -> EventBus:
        bus: EventBus
        if self.adapter == "nats":
            bus = NatsBus(
                address or self.address,
                client_name=f"test-{len(self.buses)}",
                topic_prefix=self.prefix,
                # Short, so that the redelivery of an unacknowledged message is quick to observe.
                ack_wait_seconds=2.0,
                shutdown_grace_seconds=shutdown_grace_seconds,
                **options,
            )
        else:
            bus = KafkaBus(
                address or self.address,
                client_name=f"test-{len(self.buses)}",
                topic_prefix=self.prefix,
                publish_timeout_seconds=2.0,
                shutdown_grace_seconds=shutdown_grace_seconds,
                **options,
            )
        self.buses.append(bus)
        return bus

    async def started(self, **kwargs: Any) -> EventBus:
        bus = self.make(**kwargs)
        await bus.start()
        return bus

    async def close_all(self) -> None:
        await asyncio.gather(*(bus.close() for bus in self.buses), return_exceptions=True)


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker_address(adapter: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("nats_url" if adapter == "nats" else "kafka_bootstrap"))


@pytest.fixture
async def buses(adapter: str, broker_address: str) -> AsyncIterator[BusMaker]:
    maker = BusMaker(adapter, broker_address)
    try:
        yield maker
    finally:
        await maker.close_all()


@pytest.fixture
def own_broker(adapter: str, tmp_path: Path) -> Iterator[EmbeddedNats | EmbeddedApacheKafka]:
    """A broker of this test alone, which the test may stop and start again."""
    broker: EmbeddedNats | EmbeddedApacheKafka = (
        EmbeddedNats() if adapter == "nats" else EmbeddedApacheKafka()
    )
    broker.start(tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


class Inbox:
    """Collects delivered messages; tests wait on it with a deadline instead of sleeping."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handler(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def values(self) -> list[bytes]:
        return [m.value for m in self.messages]


async def eventually(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Wait until `predicate()` holds, failing the test with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
