"""The event bus on NATS JetStream: the bus itself, i.e. its connection, its names and its streams.

Publishing is in publishing.py, reading a topic back in reading.py, a group's consumer in
consumer.py and one member of a group in member.py; the package's docstring maps the bus contract
onto JetStream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from sandwich.platform.bus.base import (
    BusUnavailable,
    EventBus,
    Membership,
    Message,
    Outgoing,
    PublishResult,
    Subscription,
    is_dead_letter_topic,
    with_dead_letters,
)
from sandwich.platform.bus.nats.member import NatsGroupMember
from sandwich.platform.bus.nats.publishing import PipelinedPublisher, publish_batch, publish_one
from sandwich.platform.bus.nats.reading import read_stream
from sandwich.platform.bus.nats.wire import KIND_SUBJECT, VALID_SUBJECT, sanitize, stream_name

log = structlog.get_logger("sandwich.bus.nats")


class NatsBus(EventBus):
    """One NATS connection per process, JetStream on top.

    `ack_wait_seconds` is how long a message handed to a member may stay unacknowledged before
    JetStream gives it to another member: it bounds how late a crashed member's messages come back,
    and it is kept alive with progress acks while a handler works, so it need not cover slow handlers.
    """

    name = "nats"

    def __init__(
        self,
        url: str,
        *,
        client_name: str = "sandwich",
        topic_prefix: str = "",
        ack_wait_seconds: float = 10.0,
        request_timeout_seconds: float = 2.0,
        max_ack_pending: int = 256,
        max_concurrent_handlers: int = 32,
        stream_max_age_seconds: float | None = 7 * 24 * 3600.0,
        start_timeout_seconds: float = 5.0,
        shutdown_grace_seconds: float = 10.0,
        handler_timeout_seconds: float | None = 60.0,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if not url:
            raise ValueError("NatsBus needs a server URL, e.g. nats://127.0.0.1:4222")
        self.url = url
        self.client_name = client_name
        self.topic_prefix = topic_prefix
        self.ack_wait_seconds = ack_wait_seconds
        self.request_timeout_seconds = request_timeout_seconds
        self.max_ack_pending = max_ack_pending
        self.max_concurrent_handlers = max_concurrent_handlers
        self.stream_max_age_seconds = stream_max_age_seconds
        self.start_timeout_seconds = start_timeout_seconds
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.handler_timeout_seconds = handler_timeout_seconds
        self.user = user
        self._password = password
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._publisher: PipelinedPublisher | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._subscriptions: set[NatsGroupMember] = set()
        self._known_streams: set[str] = set()
        self._closed = False
        self._last_error_log = 0.0

    # -- naming -------------------------------------------------------------------------------------
    def subject(self, topic: str) -> str:
        subject = f"{self.topic_prefix}{topic}"
        if not VALID_SUBJECT.match(subject):
            raise ValueError(
                f"invalid topic {topic!r} (with prefix {self.topic_prefix!r}) for a NATS subject"
            )
        return subject

    def kind_subject(self, topic: str, kind: str) -> str:
        """The subject of a message of `kind` (an order status) on `topic`."""
        return f"{self.subject(topic)}{KIND_SUBJECT}{sanitize(kind)}" if kind else self.subject(topic)

    def stream_subjects(self, topic: str) -> list[str]:
        subject = self.subject(topic)
        if is_dead_letter_topic(topic):
            return [subject]
        return [subject, f"{subject}{KIND_SUBJECT}*"]

    def stream_name(self, topic: str) -> str:
        return stream_name(self.topic_prefix, topic)

    # -- connection ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect; if the broker is down, keep connecting in the background and return.

        A service must come up while the broker is away (its outbox keeps the events): publishing
        raises `BusUnavailable` and subscriptions wait until the connection is made.
        """
        if self._connect_task is not None:
            return
        self._closed = False
        self._connect_task = asyncio.create_task(self._connect(), name=f"nats-connect-{self.client_name}")
        done, _ = await asyncio.wait({self._connect_task}, timeout=self.start_timeout_seconds)
        if done:
            self._connect_task.result()  # a bad URL or option fails start() loudly
        else:
            log.warning("nats_unreachable_connecting_in_background", url=self.url)

    async def _connect(self) -> None:
        nc = NATS()
        self._nc = nc
        # A user of its own, when the server asks for one, with an inbox of its own: the server lets
        # a service's user receive replies only there (platform/embedded/nats_access.py).
        await nc.connect(
            servers=[self.url],
            name=self.client_name,
            user=self.user or None,
            password=self._password if self.user else None,
            inbox_prefix=f"_INBOX.{self.user}" if self.user else "_INBOX",
            connect_timeout=max(1, round(self.request_timeout_seconds)),
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # reconnect forever, including the first connect
            reconnect_time_wait=1,
            # A broker that vanished without closing the socket is noticed within ~10 s.
            ping_interval=5,
            max_outstanding_pings=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        publisher = PipelinedPublisher(nc)
        await publisher.start()
        self._publisher = publisher
        self._js = nc.jetstream(timeout=self.request_timeout_seconds)
        log.info("nats_connected", url=self.url, client=self.client_name)

    async def _on_error(self, exc: Exception) -> None:
        # While the broker is down the client reports every failed reconnect: log one line per 10 s.
        now = time.monotonic()
        if now - self._last_error_log > 10:
            self._last_error_log = now
            log.warning("nats_client_error", url=self.url, error=repr(exc))

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("nats_disconnected", url=self.url)

    async def _on_reconnected(self) -> None:
        log.info("nats_reconnected", url=self.url)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected and self._js is not None

    def _connected_js(self) -> JetStreamContext:
        if self._closed:
            raise BusUnavailable("the NATS bus is closed")
        if self._js is None or self._nc is None or not self._nc.is_connected:
            raise BusUnavailable(f"not connected to NATS at {self.url}")
        return self._js

    async def close(self) -> None:
        """Stop every subscription (in-flight handlers get `shutdown_grace_seconds`), then disconnect."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(sub.stop() for sub in list(self._subscriptions)), return_exceptions=True)
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
            with contextlib.suppress(BaseException):
                await self._connect_task
        self._connect_task = None
        nc, self._nc, self._js, self._publisher = self._nc, None, None, None
        if nc is not None and not nc.is_closed:
            # Flushes outstanding acks; bounded, because the broker may be gone.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), timeout=self.request_timeout_seconds)

    async def healthy(self) -> bool:
        try:
            js = self._connected_js()
            await js.account_info()
            return True
        except Exception:
            return False

    # -- topics -------------------------------------------------------------------------------------
    async def ensure_topics(self, topics: list[str]) -> None:
        for topic in with_dead_letters(topics):
            await self._ensure_stream(topic)

    async def _ensure_stream(self, topic: str) -> None:
        stream = self.stream_name(topic)
        if stream in self._known_streams:
            return
        js = self._connected_js()
        subjects = self.stream_subjects(topic)
        try:
            try:
                info = await js.stream_info(stream)
                if set(subjects) - set(info.config.subjects or ()):
                    # A stream made before messages had kinds: bind the kinds' subjects to it too.
                    config = replace(info.config, subjects=subjects)
                    await js.update_stream(config)
                    log.info("nats_stream_subjects_added", stream=stream, subjects=subjects)
            except nats.js.errors.NotFoundError:
                config = StreamConfig(
                    name=stream,
                    subjects=subjects,
                    storage=StorageType.FILE,
                    retention=RetentionPolicy.LIMITS,
                    discard=DiscardPolicy.OLD,
                    max_age=self.stream_max_age_seconds,
                    num_replicas=1,
                )
                # Creating a stream that exists with the same config is a no-op on the server, so two
                # processes racing here both succeed.
                await js.add_stream(config)
                log.info("nats_stream_created", stream=stream, subject=config.subjects)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            if isinstance(exc, nats.js.errors.APIError) and not isinstance(
                exc, nats.js.errors.ServiceUnavailableError
            ):
                raise  # a real configuration problem (e.g. the subject belongs to another stream)
            raise BusUnavailable(f"could not create stream {stream}: {exc!r}") from exc
        self._known_streams.add(stream)

    # -- publishing and reading back (publishing.py, reading.py) --------------------------------------
    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        await publish_one(self, topic, key, value, headers)

    async def publish_many(self, messages: Sequence[Outgoing], *, ensured: bool = False) -> PublishResult:
        """Write the whole batch to the connection in order, then collect the PubAcks
        (`publishing.publish_batch` says how a partial failure is published again)."""
        return await publish_batch(self, messages, ensured=ensured)

    def read_retained(self, topic: str) -> AsyncIterator[Message]:
        """Every message the topic's stream still holds, oldest first, then stop (`reading.py`).

        The reader itself is handed out, so nothing stands between it and the caller per message."""
        return read_stream(self, topic)

    # -- consuming ----------------------------------------------------------------------------------
    async def _join(self, membership: Membership) -> Subscription:
        if self._closed:
            raise BusUnavailable("the NATS bus is closed")
        subscription = NatsGroupMember(self, membership)
        self._subscriptions.add(subscription)
        await subscription.start()
        return subscription
