"""One member of a Kafka consumer group: a consumer, and the loop that feeds the handler.

Offsets are committed manually, only for messages that are settled (handled, or parked on the
dead-letter topic). Before a rebalance takes partitions away, the message in flight is finished
and its offset committed, so the new owner neither skips nor repeats it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from sandwich.platform.bus.base import Membership
from sandwich.platform.bus.group_member import GroupMember
from sandwich.platform.bus.kafka.wire import message_of

if TYPE_CHECKING:
    from sandwich.platform.bus.kafka.bus import KafkaBus

log = structlog.get_logger("sandwich.bus.kafka")


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: KafkaGroupMember) -> None:
        self.subscription = subscription

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.subscription.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.subscription.on_assigned(set(assigned))


class KafkaGroupMember(GroupMember):
    """One member of a consumer group: a consumer and the loop that feeds the handler, one message
    at a time, so nothing behind a retried message on its partition overtakes it."""

    def __init__(self, bus: KafkaBus, membership: Membership) -> None:
        super().__init__(bus, membership, handler_timeout_seconds=bus.handler_timeout_seconds, log=log)
        self.bus = bus
        self.topic_name = bus.topic_name(self.topic)
        self._consumer: AIOKafkaConsumer | None = None
        # Held while one message is handled, so that a rebalance waits for it before committing.
        self._handling = asyncio.Lock()
        self._busy = False
        # Bumped when partitions are revoked: records fetched before that are no longer ours to handle.
        self._generation = 0
        self._processed: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._committed: dict[TopicPartition, int] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"kafka-sub-{self.topic_name}-{self.group}")

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bus.bootstrap_servers,
            **self.bus.security,
            client_id=f"{self.bus.client_name}-{self.group}",
            group_id=self.bus.group_id(self.group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new group reads the topic from its beginning
            session_timeout_ms=self.bus.session_timeout_ms,
            heartbeat_interval_ms=self.bus.heartbeat_interval_ms,
            max_poll_records=self.bus.max_poll_records,
        )

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            consumer: AIOKafkaConsumer | None = None
            try:
                if self.bus.auto_create_topics and self.topic_name not in self.bus._ensured:
                    await self.bus.ensure_topics([self.topic])
                consumer = self._new_consumer()
                consumer.subscribe([self.topic_name], listener=_Rebalance(self))
                await consumer.start()
                self._consumer = consumer
                failures = 0
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self._warn_now_and_then("kafka_consumer_failed", exc, failures)
            finally:
                if consumer is not None:
                    await self._close_consumer(consumer)
            if not self._stopping.is_set():
                await self._pause(min(5.0, 0.2 * 2**failures))

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        """Poll, handle each record in order, commit what is settled; a record that is not settled
        (the member is stopping) is left uncommitted and is delivered again."""
        while not self._stopping.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=self.bus.max_poll_records)
            if not batch:
                continue
            generation = self._generation
            self._busy = True
            try:
                for tp, records in batch.items():
                    for record in records:
                        if self._stopping.is_set() or generation != self._generation:
                            break
                        async with self._handling:
                            if generation != self._generation:
                                break
                            if not await self._settle(message_of(self.topic, record)):
                                break  # stopping: left uncommitted, delivered again
                            self._processed[tp] = record.offset + 1
            finally:
                self._busy = False
            await self._commit(consumer)

    async def _commit(
        self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition] | None = None
    ) -> None:
        offsets = {
            tp: offset
            for tp, offset in self._processed.items()
            if (partitions is None or tp in partitions) and self._committed.get(tp) != offset
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
            self._committed.update(offsets)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The group moved on (rebalance, broker restart): the new owner gets these messages again.
            self._log.warning("kafka_commit_failed", error=repr(exc), offsets=len(offsets))

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before partitions go to another member: finish the message in flight, commit what is done."""
        self._generation += 1
        consumer = self._consumer
        async with self._handling:
            if consumer is not None:
                await self._commit(consumer, revoked)
        for tp in revoked:
            self._processed.pop(tp, None)
            self._committed.pop(tp, None)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._log.debug("kafka_partitions_assigned", partitions=sorted(tp.partition for tp in assigned))

    async def _close_consumer(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what was handled, then leave the group (so its partitions move on at once)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._commit(consumer), 5.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), 10.0)
        self._consumer = None
        self._processed.clear()
        self._committed.clear()

    async def stop(self) -> None:
        if self._stopping.is_set() and self._task is None:
            return
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            if not self._busy:
                task.cancel()  # idle in a poll: nothing to finish
            done, _ = await asyncio.wait({task}, timeout=self.bus.shutdown_grace_seconds)
            if not done:
                self._log.warning("kafka_handler_cancelled_on_stop", grace=self.bus.shutdown_grace_seconds)
                task.cancel()
                await asyncio.wait({task})
        self.bus._subscriptions.discard(self)
