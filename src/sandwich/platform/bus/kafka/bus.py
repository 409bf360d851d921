"""The event bus on Apache Kafka: the bus itself, i.e. its clients, its names and its topics.

Publishing is in publishing.py, reading a topic back in reading.py and one member of a consumer
group in member.py; the package's docstring maps the bus contract onto Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from sandwich.platform.bus.base import (
    BusUnavailable,
    EventBus,
    Membership,
    Message,
    Outgoing,
    PublishResult,
    Subscription,
    with_dead_letters,
)
from sandwich.platform.bus.kafka.member import KafkaGroupMember
from sandwich.platform.bus.kafka.publishing import publish_batch, publish_one
from sandwich.platform.bus.kafka.reading import read_topic
from sandwich.platform.bus.kafka.wire import VALID_TOPIC

log = structlog.get_logger("sandwich.bus.kafka")

_TOPIC_ALREADY_EXISTS = 36


class _Startable(Protocol):
    async def start(self) -> None: ...


_Client = TypeVar("_Client", bound=_Startable)


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
        self._subscriptions: set[KafkaGroupMember] = set()
        self._closed = False

    # -- naming -------------------------------------------------------------------------------------
    def topic_name(self, topic: str) -> str:
        name = f"{self.topic_prefix}{topic}"
        if not VALID_TOPIC.match(name):
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
            self._producer = await self._start_client(producer, producer.stop)
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
                self._admin = await self._start_client(admin, admin.close)
            return self._admin

    async def _start_client(self, client: _Client, stop: Callable[[], Awaitable[object]]) -> _Client:
        """Start a producer, admin client or consumer within the publish timeout; one that does not
        start is stopped again (`stop`), and the broker counts as unreachable."""
        try:
            await asyncio.wait_for(client.start(), self.publish_timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await stop()
            raise BusUnavailable(f"Kafka at {self.bootstrap_servers} is unreachable: {exc!r}") from exc
        return client

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
        names = [self.topic_name(topic) for topic in with_dead_letters(topics)]
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

    # -- publishing and reading back (publishing.py, reading.py) --------------------------------------
    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        await publish_one(self, topic, key, value, headers)

    async def publish_many(self, messages: Sequence[Outgoing]) -> PublishResult:
        """Hand the whole batch to the producer in order, then wait for the deliveries
        (`publishing.publish_batch` says what counts as published)."""
        return await publish_batch(self, messages)

    def read_retained(self, topic: str) -> AsyncIterator[Message]:
        """Every record the topic still holds, oldest first per partition, then stop (`reading.py`).

        The reader itself is handed out, so nothing stands between it and the caller per record."""
        return read_topic(self, topic)

    # -- consuming ----------------------------------------------------------------------------------
    async def _join(self, membership: Membership) -> Subscription:
        """`kinds` is not used for routing here: Kafka delivers the whole topic (the kind travels in
        a header for whoever wants to look), and the handler skips what it does not want."""
        if self._closed:
            raise BusUnavailable("the Kafka bus is closed")
        subscription = KafkaGroupMember(self, membership)
        self._subscriptions.add(subscription)
        subscription.start()
        return subscription
