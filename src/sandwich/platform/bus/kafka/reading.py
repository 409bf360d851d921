"""Reading a topic back (`read_retained`): what a read model is rebuilt from.

A consumer without a group: it is assigned every partition, seeks to the beginning and reads up to
the end of each partition; it commits nothing, so no group's position moves. Partitions are read
side by side, so records of different keys interleave, while each key (one partition) keeps its
publish order.

The end of a partition is its end offset when the read began, raised to the high watermark of the
first fetch answer: some Kafka-protocol brokers answer ListOffsets(latest) with the base offset of
the last record batch plus one, which undercounts when the producer sent several records in one
batch. The high watermark of a fetch is right everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from sandwich.platform.bus.base import BusUnavailable, Message
from sandwich.platform.bus.kafka.wire import message_of

if TYPE_CHECKING:
    from sandwich.platform.bus.kafka.bus import KafkaBus

READ_BATCH = 500
"""Records per poll when a topic is read back (`read_retained`)."""


async def read_topic(bus: KafkaBus, topic: str) -> AsyncIterator[Message]:
    """Every record the topic still holds, oldest first per partition, then stop."""
    name = bus.topic_name(topic)
    if bus._closed:
        raise BusUnavailable("the Kafka bus is closed")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bus.bootstrap_servers,
        **bus.security,
        client_id=f"{bus.client_name}-read",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=bus._request_timeout_ms,
    )
    await bus._start_client(consumer, consumer.stop)
    try:
        ends, remaining = await _from_the_beginning(bus, consumer, name)
        idle_polls = 0
        watermarked: set[TopicPartition] = set()
        while remaining:
            try:
                batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=READ_BATCH)
            except (KafkaError, OSError) as exc:
                raise BusUnavailable(f"reading topic {name} failed: {exc!r}") from exc
            idle_polls = 0 if batch else idle_polls + 1
            if idle_polls >= 10:
                raise BusUnavailable(f"topic {name} stopped delivering before its end offsets")
            for tp, records in batch.items():
                if tp not in watermarked:
                    watermarked.add(tp)
                    ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
                for record in records:
                    if record.offset >= ends[tp]:
                        break  # published after the read began
                    yield message_of(topic, record)
            # The end may sit behind records a consumer never sees (transaction markers).
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), 10.0)


async def _from_the_beginning(
    bus: KafkaBus, consumer: AIOKafkaConsumer, name: str
) -> tuple[dict[TopicPartition, int], set[TopicPartition]]:
    """Assign the consumer every partition of the topic, at its beginning: the end offset of each,
    and the partitions with anything to read (none: the topic was never created, nothing retained)."""
    try:
        # The whole cluster's metadata: a group-less consumer's own metadata covers only the
        # topics it subscribed to.
        cluster = await asyncio.wait_for(
            (await bus._ensure_producer()).client.fetch_all_metadata(), bus.publish_timeout_seconds
        )
        partitions = sorted(cluster.partitions_for_topic(name) or ())
        if not partitions:
            return {}, set()
        assigned = [TopicPartition(name, partition) for partition in partitions]
        consumer.assign(assigned)
        ends: dict[TopicPartition, int] = await asyncio.wait_for(
            consumer.end_offsets(assigned), bus.publish_timeout_seconds
        )
        await consumer.seek_to_beginning(*assigned)
        return ends, {tp for tp in assigned if await consumer.position(tp) < ends[tp]}
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BusUnavailable(f"could not read topic {name}: {exc!r}") from exc
