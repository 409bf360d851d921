"""The embedded brokers ask every client who it is and let each service do only what its topics need
(platform/embedded/nats_access.py, kafka_access.py): tried against the running platform's own broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import nats.errors
import nats.js.errors
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from nats.aio.client import Client

from sandwich.platform.bus.nats import stream_name
from sandwich.platform.embedded import kafka_access, nats_access
from sandwich.platform.events import TOPIC_ORDER_EVENTS, TOPIC_ORDERS_CREATE
from sandwich.supervisor import Platform

pytestmark = pytest.mark.e2e


def _nats_url(platform: Platform) -> str:
    if platform.nats_url is None or platform.broker_kind.value != "nats":
        pytest.skip(
            f"{platform.flow.value} on {platform.broker_kind.value}: no NATS in this run (printed reason)"
        )
    return platform.nats_url


def _prefix(platform: Platform) -> str:
    return str(platform.connection_info()["topic_prefix"])


class Violations:
    """The asynchronous errors the server sent a client (a refused publish or subscription), lower
    case as nats-py reports them; `has` compares without case."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.errors.append(str(exc).lower())

    def has(self, fragment: str) -> bool:
        return any(fragment.lower() in e for e in self.errors)

    async def wait_for(self, fragment: str) -> list[str]:
        for _ in range(50):
            if self.has(fragment):
                break
            await asyncio.sleep(0.05)
        return self.errors


@pytest.fixture
async def as_kitchen(platform: Platform) -> AsyncIterator[tuple[Client, Violations]]:
    url = _nats_url(platform)
    violations = Violations()
    client = await nats.connect(
        url,
        user="kitchen",
        password=nats_access.ensure_password(platform.secrets_dir, "kitchen"),
        inbox_prefix=nats_access.inbox_prefix("kitchen"),
        error_cb=violations.record,
        allow_reconnect=False,
    )
    try:
        yield client, violations
    finally:
        await client.close()


async def _stored(platform: Platform, topic: str) -> int | None:
    """Messages in the topic's stream; None when the flow has no such stream."""
    admin = await nats.connect(platform.nats_admin_url or "", allow_reconnect=False)
    try:
        info = await admin.jetstream().stream_info(stream_name(_prefix(platform), topic))
        return int(info.state.messages)
    except nats.js.errors.NotFoundError:
        return None
    finally:
        await admin.close()


async def test_an_anonymous_client_or_a_wrong_password_cannot_connect(platform: Platform) -> None:
    url = _nats_url(platform)
    for credentials in ({}, {"user": "kitchen", "password": "not-its-password"}):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3, **credentials
            )


async def test_a_service_cannot_publish_to_a_topic_it_does_not_own(
    platform: Platform, as_kitchen: tuple[Client, Violations]
) -> None:
    client, violations = as_kitchen
    for topic in (TOPIC_ORDER_EVENTS, TOPIC_ORDERS_CREATE):
        before = await _stored(platform, topic)
        subject = f"{_prefix(platform)}{topic}"
        await client.publish(subject, b'{"forged": true}')
        await client.publish(f"{subject}.kind.completed", b'{"forged": true}')
        await client.flush()
        errors = await violations.wait_for(f'publish to "{subject}.kind.completed"')
        assert violations.has(f'permissions violation for publish to "{subject}"'), errors
        assert await _stored(platform, topic) == before, "a refused message must not reach the stream"


async def test_a_service_cannot_read_what_is_not_its_own(
    platform: Platform, as_kitchen: tuple[Client, Violations]
) -> None:
    client, violations = as_kitchen
    for subject in (
        ">",
        f"{_prefix(platform)}{TOPIC_ORDER_EVENTS}",
        "_SANDWICH.deliver.>",
        "_INBOX.orders.>",
    ):
        await client.subscribe(subject)
        await client.flush()
        errors = await violations.wait_for(f'subscription to "{subject}"')
        assert violations.has(f'permissions violation for subscription to "{subject}"'), errors


async def test_a_service_cannot_delete_or_purge_a_stream(
    platform: Platform, as_kitchen: tuple[Client, Violations]
) -> None:
    client, violations = as_kitchen
    stream = stream_name(_prefix(platform), TOPIC_ORDER_EVENTS)
    js = client.jetstream(timeout=1.0)
    for attempt in (js.delete_stream(stream), js.purge_stream(stream)):
        with pytest.raises(nats.errors.Error):  # refused: the request never reaches the API (timeout)
            await attempt
    errors = await violations.wait_for("STREAM.PURGE")
    assert violations.has(f'publish to "$JS.API.STREAM.DELETE.{stream}"'), errors
    assert await _stored(platform, TOPIC_ORDER_EVENTS) is not None, "the stream is still there"


# -- Apache Kafka ------------------------------------------------------------------------------------


def _kafka(platform: Platform) -> str:
    if platform.kafka_bootstrap_servers is None:
        pytest.skip(
            f"{platform.flow.value} on {platform.broker_kind.value}: no Kafka in this run (printed reason)"
        )
    return platform.kafka_bootstrap_servers


def _as(platform: Platform, user: str, password: str | None = None) -> dict[str, str]:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": user,
        "sasl_plain_password": password or kafka_access.ensure_password(platform.secrets_dir, user),
    }


async def _end_offsets(platform: Platform, topic: str) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=_kafka(platform), **_as(platform, kafka_access.ADMIN_USER), request_timeout_ms=5000
    )
    await consumer.start()
    try:
        name = f"{_prefix(platform)}{topic}"
        assert name in await consumer.topics()
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_kafka_refuses_a_client_without_the_right_password(platform: Platform) -> None:
    bootstrap = _kafka(platform)
    for options in ({}, _as(platform, "kitchen", "not-its-password")):
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000, **options)
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(producer.start(), 10)
        await producer.stop()


async def test_a_kafka_user_cannot_write_a_topic_it_does_not_own(platform: Platform) -> None:
    bootstrap = _kafka(platform)
    before = await _end_offsets(platform, TOPIC_ORDER_EVENTS)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, **_as(platform, "kitchen")
    )
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(f"{_prefix(platform)}{TOPIC_ORDER_EVENTS}", b'{"forged": true}')
    finally:
        await producer.stop()
    assert await _end_offsets(platform, TOPIC_ORDER_EVENTS) == before, "a refused record must not be stored"


async def test_a_kafka_user_cannot_read_a_topic_it_does_not_consume_or_delete_one(platform: Platform) -> None:
    bootstrap = _kafka(platform)
    consumer = AIOKafkaConsumer(
        f"{_prefix(platform)}{TOPIC_ORDERS_CREATE}",
        bootstrap_servers=bootstrap,
        group_id=f"{_prefix(platform)}kitchen",
        auto_offset_reset="earliest",
        **_as(platform, "kitchen"),
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.start()
            await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_as(platform, "kitchen"))
    await admin.start()
    try:
        answer = await admin.delete_topics([f"{_prefix(platform)}{TOPIC_ORDER_EVENTS}"])
        codes = [code for _topic, code, *_rest in answer.topic_error_codes]
        assert codes == [TopicAuthorizationFailedError.errno], answer
    finally:
        await admin.close()
