"""Publishing to Kafka: one record waiting for `acks=all`, or a batch handed to the producer at once.

The producer bounds both steps of a send by its request timeout (waiting for metadata, then for the
batch, which it fails and drops once expired), so a publish reported as failed is not still queued
in the producer. Our own timeouts are only a guard, set well above it: abandoning a send the
producer still holds would let it through later, behind the caller's back (seen across broker
restarts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka.errors import KafkaError

from sandwich.platform.bus.base import BusUnavailable, Outgoing, PublishResult, with_dead_letters
from sandwich.platform.bus.kafka.wire import KIND_HEADER

if TYPE_CHECKING:
    from sandwich.platform.bus.kafka.bus import KafkaBus


async def publish_one(
    bus: KafkaBus, topic: str, key: str, value: bytes, headers: dict[str, str] | None
) -> None:
    """`KafkaBus.publish`: the message key is the Kafka key, so its partition keeps its order."""
    name = bus.topic_name(topic)
    if bus.auto_create_topics and name not in bus._ensured:
        await bus._create_topics(with_dead_letters([name]))
    producer = await bus._ensure_producer()
    guard = 3 * bus.publish_timeout_seconds
    try:
        delivery = await asyncio.wait_for(
            producer.send(
                name,
                value=value,
                key=key.encode(),
                headers=[(k, v.encode()) for k, v in (headers or {}).items()],
            ),
            guard,
        )
        await asyncio.wait_for(delivery, guard)
    except (KafkaError, OSError, TimeoutError) as exc:
        # The broker may have lost the topic (a memory-only broker restarted): check it again
        # before the next publish.
        bus._ensured.discard(name)
        raise BusUnavailable(f"Kafka did not acknowledge a publish to {name}: {exc!r}") from exc


async def publish_batch(bus: KafkaBus, messages: Sequence[Outgoing]) -> PublishResult:
    """`KafkaBus.publish_many`: hand the whole batch to the producer in order, then wait for the
    deliveries.

    The producer batches records of one partition into one request, so this costs about one
    round trip per batch; records of one key (one partition) stay in order. Only the leading
    delivered records count as published; Kafka has no broker-side de-duplication here
    (idempotence is off, see `enable_idempotence`), so a later batch may repeat a record, which
    the consumers' inbox drops.
    """
    if not messages:
        return PublishResult(0)
    deliveries: list[asyncio.Future[object]] = []
    error: BusUnavailable | None = None
    guard = 3 * bus.publish_timeout_seconds
    try:
        producer = await bus._ensure_producer()
        for message in messages:
            name = bus.topic_name(message.topic)
            if bus.auto_create_topics and name not in bus._ensured:
                await bus._create_topics(with_dead_letters([name]))
            headers = [(k, v.encode()) for k, v in message.headers.items()]
            if message.kind:
                headers.append((KIND_HEADER, message.kind.encode()))
            deliveries.append(
                await asyncio.wait_for(
                    producer.send(
                        name, value=message.value, key=message.key.encode(), headers=headers or None
                    ),
                    guard,
                )
            )
    except (BusUnavailable, KafkaError, OSError, TimeoutError) as exc:
        error = exc if isinstance(exc, BusUnavailable) else BusUnavailable(f"Kafka send failed: {exc!r}")
    for index, delivery in enumerate(deliveries):
        try:
            await asyncio.wait_for(delivery, guard)
        except (KafkaError, OSError, TimeoutError) as exc:
            bus._ensured.clear()
            return PublishResult(index, BusUnavailable(f"Kafka did not acknowledge: {exc!r}"))
    return PublishResult(len(deliveries), error)
