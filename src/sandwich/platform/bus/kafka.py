"""The event bus on Apache Kafka (production), with aiokafka.

Mapping of the bus contract (see `base.py`) onto Kafka:

- A topic is a Kafka topic `<prefix><topic>` with a few partitions; the message key is the Kafka key,
  so the default partitioner puts every message of a key on one partition, where order is kept.
- `publish` waits for the broker's acknowledgement with `acks=all` (every in-sync replica has it).
  The producer's request timeout is short, so a dead broker turns into `BusUnavailable` within
  seconds and the outbox keeps the message.
- A group is a Kafka consumer group (`<prefix><group>`): partitions are shared among its members, and
  every group has its own committed offsets, so it gets every message.
- Offsets are committed manually, only for messages whose handler returned (at-least-once). Before a
  rebalance takes partitions away, the message in flight is finished and its offset committed, so the
  new owner neither skips nor repeats it. A member that dies without committing leaves its messages
  to the next owner, which starts from the last committed offset.
- One subscription handles its messages one at a time; a failing message is retried in place, so
  nothing behind it on its partition overtakes it, then parked on the dead-letter topic.

Tested against Apache Kafka 4.4 (KRaft, the embedded one of `sandwich up --broker kafka`): the bus
contract suite, and the whole end-to-end suite of the broker flows with two members per group. What
we configured for it:

- The session timeout is 6 s, Kafka's minimum (`group.min.session.timeout.ms`): a member that died
  without leaving loses its partitions to the others within 6 s.
- `enable_idempotence` stays False (acks=all alone). With it the producer keeps a batch it could not
  deliver and sends it once the broker is back, after `publish` had reported the send as failed
  (measured: a publish failed after 6 s while the broker was down, and its message was stored later),
  which is the "sent behind the caller's back" the outbox must not see. Without it a retried send
  may duplicate a message, which the at-least-once contract (idempotent consumers) already allows;
  order is still kept: one batch in flight per partition, and the outbox awaits each publish.
- CreateTopics answers TOPIC_ALREADY_EXISTS (36) per topic; `ensure_topics` creates every topic with
  our partition count, and its dead-letter topic, so the broker needs no auto-creation. A failed
  publish makes the adapter check the topic again before the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from sandwich.platform.bus.base import (
    BusUnavailable,
    DeliveryOutcome,
    DeliveryResult,
    EventBus,
    Handler,
    Message,
    Outgoing,
    PublishResult,
    Subscription,
    dead_letter_topic,
    deliver_with_retries,
    park_on_dead_letter_topic,
)

log = structlog.get_logger("sandwich.bus.kafka")

_VALID_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_DLQ_SUFFIX = dead_letter_topic("")
_TOPIC_ALREADY_EXISTS = 36
READ_BATCH = 500
"""Records per poll when a topic is read back (`read_retained`)."""


def _with_dead_letters(topics: Iterable[str]) -> list[str]:
    """The topics plus their dead-letter topics (a dead-letter topic gets none of its own)."""
    result: list[str] = []
    for topic in topics:
        for name in (topic, *(() if topic.endswith(_DLQ_SUFFIX) else (dead_letter_topic(topic),))):
            if name not in result:
                result.append(name)
    return result


class KafkaBus(EventBus):
    """One producer (and one admin client) per process; one consumer per subscription."""

    name = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_name: str = "sandwich",
        topic_prefix: str = "",
        partitions: int = 4,
        replication_factor: int = 1,
        publish_timeout_seconds: float = 5.0,
        enable_idempotence: bool = False,
        auto_create_topics: bool = True,
        session_timeout_ms: int = 6_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_records: int = 100,
        shutdown_grace_seconds: float = 10.0,
        handler_timeout_seconds: float | None = 60.0,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        """`user` and `password`: SASL/PLAIN credentials, for a broker that asks who its clients are
        (the embedded one of `sandwich up`, platform/embedded/kafka_access.py)."""
        if not bootstrap_servers:
            raise ValueError("KafkaBus needs bootstrap servers, e.g. 127.0.0.1:9092")
        self.bootstrap_servers = bootstrap_servers
        self.client_name = client_name
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.publish_timeout_seconds = publish_timeout_seconds
        self.enable_idempotence = enable_idempotence
        self.auto_create_topics = auto_create_topics
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_poll_records = max_poll_records
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.handler_timeout_seconds = handler_timeout_seconds
        self.security: dict[str, Any] = {}
        if user:
            self.security = {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_plain_username": user,
                "sasl_plain_password": password or "",
            }
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._producer_lock = asyncio.Lock()
        self._admin_lock = asyncio.Lock()
        self._ensured: set[str] = set()
        self._subscriptions: set[_KafkaSubscription] = set()
        self._closed = False

    # -- naming -------------------------------------------------------------------------------------
    def topic_name(self, topic: str) -> str:
        name = f"{self.topic_prefix}{topic}"
        if not _VALID_TOPIC.match(name):
            raise ValueError(f"invalid Kafka topic name {name!r}")
        return name

    def group_id(self, group: str) -> str:
        return f"{self.topic_prefix}{group}"

    @property
    def _request_timeout_ms(self) -> int:
        return max(1000, int(self.publish_timeout_seconds * 1000))

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the producer; if the broker is down, return anyway and start it on the next publish.

        A service must come up while the broker is away (its outbox keeps the events): publishing
        raises `BusUnavailable` until the broker answers, and subscriptions keep retrying.
        """
        self._closed = False
        try:
            await self._ensure_producer()
        except BusUnavailable as exc:
            log.warning(
                "kafka_unreachable_will_retry", bootstrap_servers=self.bootstrap_servers, error=str(exc)
            )

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._closed:
            raise BusUnavailable("the Kafka bus is closed")
        if self._producer is not None:
            return self._producer
        async with self._producer_lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                **self.security,
                client_id=self.client_name,
                acks="all",
                enable_idempotence=self.enable_idempotence,
                # Bounds how long a send waits for metadata or for its batch to be acknowledged.
                request_timeout_ms=self._request_timeout_ms,
                retry_backoff_ms=100,
                linger_ms=0,
            )
            try:
                await asyncio.wait_for(producer.start(), self.publish_timeout_seconds)
            except (KafkaError, OSError, TimeoutError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise BusUnavailable(f"Kafka at {self.bootstrap_servers} is unreachable: {exc!r}") from exc
            self._producer = producer
            return producer

    async def _ensure_admin(self) -> AIOKafkaAdminClient:
        if self._closed:
            raise BusUnavailable("the Kafka bus is closed")
        async with self._admin_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers,
                    **self.security,
                    client_id=f"{self.client_name}-admin",
                    request_timeout_ms=self._request_timeout_ms,
                )
                try:
                    await asyncio.wait_for(admin.start(), self.publish_timeout_seconds)
                except (KafkaError, OSError, TimeoutError) as exc:
                    with contextlib.suppress(Exception):
                        await admin.close()
                    raise BusUnavailable(
                        f"Kafka at {self.bootstrap_servers} is unreachable: {exc!r}"
                    ) from exc
                self._admin = admin
            return self._admin

    async def _drop_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def close(self) -> None:
        """Stop every subscription (in-flight handlers get `shutdown_grace_seconds`), then the clients."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(sub.stop() for sub in list(self._subscriptions)), return_exceptions=True)
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self.publish_timeout_seconds)
        await self._drop_admin()

    async def healthy(self) -> bool:
        try:
            producer = await self._ensure_producer()
            # Bounded tighter than a publish: a readiness probe must answer quickly.
            await asyncio.wait_for(
                producer.client.fetch_all_metadata(), min(2.0, self.publish_timeout_seconds)
            )
            return True
        except Exception:
            return False

    # -- topics -------------------------------------------------------------------------------------
    async def ensure_topics(self, topics: list[str]) -> None:
        names = [self.topic_name(topic) for topic in _with_dead_letters(topics)]
        await self._create_topics(names)

    async def _create_topics(self, names: list[str]) -> None:
        admin = await self._ensure_admin()
        new_topics = [NewTopic(name, self.partitions, self.replication_factor) for name in names]
        try:
            response = await asyncio.wait_for(admin.create_topics(new_topics), self.publish_timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._drop_admin()  # its connection may be dead: start afresh next time
            raise BusUnavailable(f"could not create topics {names}: {exc!r}") from exc
        for topic, error_code, *rest in response.topic_errors:
            if error_code in (0, _TOPIC_ALREADY_EXISTS):
                self._ensured.add(topic)
            else:
                message = rest[0] if rest else ""
                raise BusUnavailable(f"could not create topic {topic}: error {error_code} {message}")

    # -- publishing ---------------------------------------------------------------------------------
    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        name = self.topic_name(topic)
        if self.auto_create_topics and name not in self._ensured:
            await self._create_topics(_with_dead_letters([name]))
        producer = await self._ensure_producer()
        try:
            # The producer bounds both steps by its request timeout (waiting for metadata, then for
            # the batch, which it fails and drops once expired), so a publish reported as failed is
            # not still queued in the producer. Our own timeouts are only a guard, set well above
            # it: abandoning a send the producer still holds would let it through later, behind
            # the caller's back (seen across broker restarts).
            delivery = await asyncio.wait_for(
                producer.send(
                    name,
                    value=value,
                    key=key.encode(),
                    headers=[(k, v.encode()) for k, v in (headers or {}).items()],
                ),
                3 * self.publish_timeout_seconds,
            )
            await asyncio.wait_for(delivery, 3 * self.publish_timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as exc:
            # The broker may have lost the topic (a memory-only broker restarted): check it again
            # before the next publish.
            self._ensured.discard(name)
            raise BusUnavailable(f"Kafka did not acknowledge a publish to {name}: {exc!r}") from exc

    async def publish_many(self, messages: Sequence[Outgoing]) -> PublishResult:
        """Hand the whole batch to the producer in order, then wait for the deliveries.

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
        try:
            producer = await self._ensure_producer()
            for message in messages:
                name = self.topic_name(message.topic)
                if self.auto_create_topics and name not in self._ensured:
                    await self._create_topics(_with_dead_letters([name]))
                headers = [(name, value.encode()) for name, value in message.headers.items()]
                if message.kind:
                    headers.append((KIND_HEADER, message.kind.encode()))
                deliveries.append(
                    await asyncio.wait_for(
                        producer.send(
                            name, value=message.value, key=message.key.encode(), headers=headers or None
                        ),
                        3 * self.publish_timeout_seconds,
                    )
                )
        except (BusUnavailable, KafkaError, OSError, TimeoutError) as exc:
            error = exc if isinstance(exc, BusUnavailable) else BusUnavailable(f"Kafka send failed: {exc!r}")
        for index, delivery in enumerate(deliveries):
            try:
                await asyncio.wait_for(delivery, 3 * self.publish_timeout_seconds)
            except (KafkaError, OSError, TimeoutError) as exc:
                self._ensured.clear()
                return PublishResult(index, BusUnavailable(f"Kafka did not acknowledge: {exc!r}"))
        return PublishResult(len(deliveries), error)

    # -- reading back -------------------------------------------------------------------------------
    async def read_retained(self, topic: str) -> AsyncIterator[Message]:
        """Every record the topic still holds, oldest first per partition, then stop.

        A consumer without a group: it is assigned every partition, seeks to the beginning and reads
        up to the end of each partition; it commits nothing, so no group's position moves. Partitions
        are read side by side, so records of different keys interleave, while each key (one
        partition) keeps its publish order.

        The end of a partition is its end offset when the read began, raised to the high watermark of
        the first fetch answer: some Kafka-protocol brokers answer ListOffsets(latest) with the base
        offset of the last record batch plus one, which undercounts when the producer sent several
        records in one batch. The high watermark of a fetch is right everywhere.
        """
        name = self.topic_name(topic)
        if self._closed:
            raise BusUnavailable("the Kafka bus is closed")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            **self.security,
            client_id=f"{self.client_name}-read",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=self._request_timeout_ms,
        )
        try:
            await asyncio.wait_for(consumer.start(), self.publish_timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise BusUnavailable(f"Kafka at {self.bootstrap_servers} is unreachable: {exc!r}") from exc
        try:
            try:
                # The whole cluster's metadata: a group-less consumer's own metadata covers only the
                # topics it subscribed to.
                cluster = await asyncio.wait_for(
                    (await self._ensure_producer()).client.fetch_all_metadata(), self.publish_timeout_seconds
                )
                partitions = sorted(cluster.partitions_for_topic(name) or ())
                if not partitions:
                    return  # the topic was never created: nothing retained
                assigned = [TopicPartition(name, partition) for partition in partitions]
                consumer.assign(assigned)
                ends: dict[TopicPartition, int] = await asyncio.wait_for(
                    consumer.end_offsets(assigned), self.publish_timeout_seconds
                )
                await consumer.seek_to_beginning(*assigned)
                remaining = {tp for tp in assigned if await consumer.position(tp) < ends[tp]}
            except (KafkaError, OSError, TimeoutError) as exc:
                raise BusUnavailable(f"could not read topic {name}: {exc!r}") from exc
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
                        yield _message_of(topic, record)
                # The end may sit behind records a consumer never sees (transaction markers).
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 10.0)

    # -- consuming ----------------------------------------------------------------------------------
    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        *,
        max_attempts: int = 5,
        retry_backoff_seconds: float = 0.2,
        kinds: Collection[str] | None = None,
    ) -> Subscription:
        """`kinds` is not used for routing here: Kafka delivers the whole topic (the kind travels in
        a header for whoever wants to look), and the handler skips what it does not want."""
        if self._closed:
            raise BusUnavailable("the Kafka bus is closed")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        subscription = _KafkaSubscription(
            self,
            topic,
            group,
            handler,
            max_attempts=max_attempts,
            retry_backoff_seconds=retry_backoff_seconds,
        )
        self._subscriptions.add(subscription)
        subscription.start()
        return subscription


KIND_HEADER = "x-bus-kind"
"""Header carrying a message's kind (Outgoing.kind)."""


def _message_of(topic: str, record: ConsumerRecord[bytes, bytes]) -> Message:
    return Message(
        topic=topic,
        key=(record.key or b"").decode("utf-8", "replace"),
        value=record.value or b"",
        headers={k: (v or b"").decode("utf-8", "replace") for k, v in (record.headers or ())},
    )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: _KafkaSubscription) -> None:
        self.subscription = subscription

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.subscription.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.subscription.on_assigned(set(assigned))


class _KafkaSubscription(Subscription):
    """One member of a consumer group: a consumer and the loop that feeds the handler."""

    def __init__(
        self,
        bus: KafkaBus,
        topic: str,
        group: str,
        handler: Handler,
        *,
        max_attempts: int,
        retry_backoff_seconds: float,
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.handler = handler
        self.max_attempts = max_attempts
        self.retry_backoff_seconds = retry_backoff_seconds
        self.topic_name = bus.topic_name(topic)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # Held while one message is handled, so that a rebalance waits for it before committing.
        self._handling = asyncio.Lock()
        self._busy = False
        # Bumped when partitions are revoked: records fetched before that are no longer ours to handle.
        self._generation = 0
        self._processed: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._committed: dict[TopicPartition, int] = {}
        self._log = log.bind(topic=topic, group=group)

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
                if failures == 1 or failures % 20 == 0:
                    self._log.warning("kafka_consumer_failed", error=repr(exc), failures=failures)
            finally:
                if consumer is not None:
                    await self._close_consumer(consumer)
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), min(5.0, 0.2 * 2**failures))

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
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
                            if not await self._handle(record):
                                break  # stopping: left uncommitted, delivered again
                            self._processed[tp] = record.offset + 1
            finally:
                self._busy = False
            await self._commit(consumer)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        """Deliver one record; True when it may be committed (handled or dead-lettered)."""
        message = _message_of(self.topic, record)
        result = await deliver_with_retries(
            self.handler,
            message,
            max_attempts=self.max_attempts,
            retry_backoff_seconds=self.retry_backoff_seconds,
            stopping=self._stopping,
            handler_timeout_seconds=self.bus.handler_timeout_seconds,
        )
        if result.outcome is DeliveryOutcome.HANDLED:
            return True
        if result.outcome is DeliveryOutcome.FAILED:
            return await self._dead_letter(message, result)
        return False

    async def _dead_letter(self, message: Message, result: DeliveryResult) -> bool:
        return await park_on_dead_letter_topic(
            self.bus, self.topic, self.group, message, result, self._stopping, self._log
        )

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
