"""The embedded NATS asks every client who it is and lets each service do only what its topics need
(platform/embedded/nats_access.py): tried against the running platform's own broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from sandwich.cli.supervisor import Platform
from sandwich.platform.bus.nats import stream_name
from sandwich.platform.embedded import nats_access
from sandwich.platform.events import TOPIC_ORDER_EVENTS, TOPIC_ORDERS_CREATE

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
