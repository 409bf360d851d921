"""The event bus on NATS JetStream: the embedded default (file storage, events survive restarts).

Mapping of the bus contract (see `base.py`) onto JetStream:

- A topic is a stream of its own (`<prefix><topic>` with dots made underscores) bound to the subject
  `<prefix><topic>` and, for messages published with a kind, `<prefix><topic>.kind.<kind>`. One stream
  per topic keeps retention, inspection and deletion per topic, as a Kafka topic would, and one
  sequence for all its subjects, so per-key order holds across kinds; its dead-letter topic
  (`<topic>.dlq`, outside the `.kind.` subjects) is a stream too. File storage.
- A group that asks for some kinds only gets a consumer filtered on the server to those kinds'
  subjects and the bare one: the messages it would skip are never sent to it (with five consumer
  groups on `order.events`, about half the deliveries of an order were events nobody there wanted).
- `publish` is a JetStream publish that waits for the PubAck, i.e. for the stream to have stored the
  message. The message key travels in a header (JetStream has no key of its own).
- A group is a durable push consumer of the topic's stream, `<group>-push`, delivering to a subject
  of its own with the group as its queue group: its members share the work, each message going to
  one member; another group is another consumer with its own position, so it gets every message.
  (Groups were pull consumers named `<group>` before; the push consumer starts where such a one had
  got to, and retires it.) Push rather than pull: a pull request per delivery cost the server more
  than the messages when events come one at a time.
- Acknowledgement is explicit and sent only after the handler returned. A member that dies leaves its
  messages unacknowledged, and JetStream hands them out again after `ack_wait`. While a handler is
  busy (or retrying) the member keeps what it holds alive with progress acks (+WPI), so a slow
  handler is not mistaken for a dead one and its messages are not given to another member meanwhile.
  The server stops delivering to the group at `max_ack_pending` unacknowledged messages.
- A member handles its messages in lanes, one per key: each lane in the order the messages came,
  the lanes side by side; a failing message is retried in place, so one member sees each key's
  messages in publish order while a slow key does not hold up the others. JetStream does not
  partition a consumer by key: with several members in a group, two messages of one key may be
  handled by two members at the same time. The platform runs one consumer process per service and
  group, and every consumer checks the aggregate version, so this is harmless here; use the Kafka
  adapter where strict per-key order across many members matters.
- The NATS client reconnects by itself, forever, and restores its subscriptions. Publishing fails
  fast (`BusUnavailable`) while it is disconnected instead of being buffered, so the outbox keeps the
  message and retries; JetStream's durable consumers resume where they were, and a member whose
  consumer vanished (a broker restarted without its data) binds a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import replace

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    Header,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

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

log = structlog.get_logger("sandwich.bus.nats")

KEY_HEADER = "x-bus-key"
"""Header carrying the message key (JetStream messages have subjects and headers, no key)."""

MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream's de-duplication header: a second message with the same id in the window is dropped."""

PUSH_SUFFIX = "-push"
"""A group's durable push consumer is named after the group with this suffix."""
DELIVER_PREFIX = "_SANDWICH.deliver"
"""Where push consumers deliver: one subject per stream and group (not under any stream's subjects)."""
CONSUMER_CHECK_SECONDS = 5.0

KIND_SUBJECT = ".kind."
"""Between a topic's subject and a message's kind (not a bare `.`: `<topic>.dlq` is another stream)."""

READ_BATCH = 256
"""Messages per fetch when a topic is read back (`read_retained`)."""

NO_RESPONDERS_STATUS = "503"
"""The status of the reply NATS sends itself when no stream takes a subject (nats.js.client's)."""

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_VALID_SUBJECT = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_DLQ_SUFFIX = dead_letter_topic("")


def _sanitize(name: str) -> str:
    """A stream or consumer name: JetStream forbids '.', '*', '>', whitespace and path separators."""
    return _INVALID_NAME_CHARS.sub("_", name)


def stream_name(topic_prefix: str, topic: str) -> str:
    """The stream of `topic` under `topic_prefix` (what `NatsBus.stream_name` gives)."""
    return _sanitize(f"{topic_prefix}{topic}")


def _with_dead_letters(topics: list[str]) -> list[str]:
    """The topics plus their dead-letter topics (a dead-letter topic gets none of its own)."""
    result: list[str] = []
    for topic in topics:
        for name in (topic, *(() if topic.endswith(_DLQ_SUFFIX) else (dead_letter_topic(topic),))):
            if name not in result:
                result.append(name)
    return result


class PipelinedPublisher:
    """JetStream publishes written back to back on the connection, each PubAck matched to its
    message by the reply subject, as nats-py's `publish_async` does, minus its stall semaphore.

    `publish_async` takes that semaphore through `asyncio.wait_for`, which on Python 3.11 is a task
    of its own: a turn of the event loop per message, and another per acknowledgement awaited with a
    timeout. A busy service takes tens of milliseconds per turn, so its relay published a message
    per turn and fell seconds behind at 100 orders/s (41 handed-over events took 4.9 s, a backlog of
    2,500 grew in 20 s). Here a batch is written without yielding; the connection's own pending
    buffer (nats-py flushes, and waits, past 2 MB) is the back-pressure, and the caller bounds the
    batch.
    """

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = ""
        self._waiting: dict[str, asyncio.Future[PubAck]] = {}
        self._next = 0

    async def start(self) -> None:
        """Subscribe to the replies (the client restores the subscription after a reconnect)."""
        self._prefix = self._nc.new_inbox()
        await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[PubAck]:
        """Write one message; the future is the stream's acknowledgement (cancel it to give up)."""
        self._next += 1
        token = str(self._next)
        ack: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._waiting[token] = ack
        ack.add_done_callback(lambda _: self._waiting.pop(token, None))
        try:
            await self._nc.publish(subject, payload, reply=f"{self._prefix}.{token}", headers=headers)
        except BaseException:
            ack.cancel()
            raise
        return ack

    async def _on_reply(self, msg: Msg) -> None:
        ack = self._waiting.get(msg.subject.rpartition(".")[2])
        if ack is None or ack.done():
            return
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS_STATUS:
            ack.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            reply = json.loads(msg.data)
        except ValueError as exc:
            ack.set_exception(nats.errors.Error(f"unreadable PubAck: {exc}"))
            return
        if "error" in reply:
            ack.set_exception(nats.js.errors.APIError.from_error(reply["error"]))
        else:
            ack.set_result(PubAck.from_response(reply))


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
        self._subscriptions: set[_NatsSubscription] = set()
        self._known_streams: set[str] = set()
        self._closed = False
        self._last_error_log = 0.0

    # -- naming -------------------------------------------------------------------------------------
    def subject(self, topic: str) -> str:
        subject = f"{self.topic_prefix}{topic}"
        if not _VALID_SUBJECT.match(subject):
            raise ValueError(
                f"invalid topic {topic!r} (with prefix {self.topic_prefix!r}) for a NATS subject"
            )
        return subject

    def kind_subject(self, topic: str, kind: str) -> str:
        """The subject of a message of `kind` (an order status) on `topic`."""
        return f"{self.subject(topic)}{KIND_SUBJECT}{_sanitize(kind)}" if kind else self.subject(topic)

    def stream_subjects(self, topic: str) -> list[str]:
        subject = self.subject(topic)
        if topic.endswith(_DLQ_SUFFIX):
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
        for topic in _with_dead_letters(topics):
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

    # -- publishing ---------------------------------------------------------------------------------
    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        js = self._connected_js()
        subject = self.subject(topic)
        message_headers = {**(headers or {}), KEY_HEADER: key}
        try:
            try:
                await js.publish(
                    subject, value, timeout=self.request_timeout_seconds, headers=message_headers
                )
            except nats.js.errors.NoStreamResponseError:
                # Nobody stores this subject: the topic was never created (or was deleted). Create
                # it, as a Kafka broker with auto-creation would, and publish again.
                self._known_streams.discard(self.stream_name(topic))
                await self._ensure_stream(topic)
                await js.publish(
                    subject, value, timeout=self.request_timeout_seconds, headers=message_headers
                )
        except BusUnavailable:
            raise
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BusUnavailable(f"NATS did not acknowledge a publish to {subject}: {exc!r}") from exc

    async def publish_many(self, messages: Sequence[Outgoing], *, ensured: bool = False) -> PublishResult:
        """Write the whole batch to the connection in order, then collect the PubAcks.

        One round trip per batch instead of one per message. The messages leave in order on one
        connection, so the stream stores them in order; if one is not acknowledged, only the ones
        before it count as published. Each carries `Nats-Msg-Id`, so the ones after it that the
        stream did store are dropped as duplicates when the batch is published again (within the
        stream's duplicate window, two minutes by default).
        """
        if not messages:
            return PublishResult(0)
        try:
            self._connected_js()
        except BusUnavailable as exc:
            return PublishResult(0, exc)
        publisher = self._publisher
        assert publisher is not None  # set with the JetStream context, cleared with it
        acks: list[asyncio.Future[PubAck]] = []
        error: BusUnavailable | None = None
        try:
            for message in messages:
                headers = {**message.headers, KEY_HEADER: message.key}
                if message.message_id:
                    headers[MSG_ID_HEADER] = message.message_id
                acks.append(
                    await publisher.publish(
                        self.kind_subject(message.topic, message.kind), message.value, headers
                    )
                )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            error = BusUnavailable(f"NATS did not take a publish: {exc!r}")
        acknowledged, ack_error = await self._collect_acks(acks)
        for ack in acks[acknowledged:]:
            ack.cancel()  # frees the client's slot for an acknowledgement that is not awaited
        if isinstance(ack_error, nats.js.errors.NoStreamResponseError) and not ensured:
            # Nobody stores that subject: the topic was never created (or was deleted), or its stream
            # is from before kinds had subjects. Create or update the streams, then publish the rest.
            rest = messages[acknowledged:]
            try:
                for topic in dict.fromkeys(message.topic for message in rest):
                    self._known_streams.discard(self.stream_name(topic))
                    await self._ensure_stream(topic)
            except BusUnavailable as exc:
                return PublishResult(acknowledged, exc)
            again = await self.publish_many(rest, ensured=True)
            return PublishResult(acknowledged + again.acknowledged, again.error)
        if ack_error is not None:
            error = BusUnavailable(f"NATS did not acknowledge a publish: {ack_error!r}")
        return PublishResult(acknowledged, error if acknowledged < len(messages) else None)

    async def _collect_acks(self, acks: list[asyncio.Future[PubAck]]) -> tuple[int, BaseException | None]:
        """How many leading acknowledgements arrived in time, and what stopped the count.

        One wait for the batch: a `wait_for` per acknowledgement was a turn of the loop apiece."""
        if acks:
            await asyncio.wait(acks, timeout=self.request_timeout_seconds)
        # Every failure is read, so that none is reported as "never retrieved".
        failures = [ack.exception() if ack.done() and not ack.cancelled() else None for ack in acks]
        for index, ack in enumerate(acks):
            if not ack.done():
                return index, TimeoutError("no PubAck within the request timeout")
            if ack.cancelled():
                return index, nats.errors.Error("the publish was cancelled")
            if failures[index] is not None:
                return index, failures[index]
        return len(acks), None

    # -- reading back -------------------------------------------------------------------------------
    async def read_retained(self, topic: str) -> AsyncIterator[Message]:
        """Every message the topic's stream still holds, oldest first, then stop.

        Read through a throw-away pull consumer: no durable name, no acknowledgements, kept in memory,
        deleted when the read ends (or by the server after a minute of inactivity, should this
        process die first), so no group's position moves. The read ends at the stream's last
        sequence as it was when it began; it ends sooner if the consumer has nothing pending (the
        oldest messages may age out while we read).
        """
        js = self._connected_js()
        stream = self.stream_name(topic)
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return  # the topic was never created: nothing retained
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BusUnavailable(f"could not read stream {stream}: {exc!r}") from exc
        last_seq = int(info.state.last_seq or 0)
        if not info.state.messages:
            return
        name = f"read_{uuid.uuid4().hex}"
        config = ConsumerConfig(
            name=name,
            filter_subjects=self.stream_subjects(topic),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        )
        try:
            await js.add_consumer(stream, config=config)
            psub = await js.pull_subscribe_bind(consumer=name, stream=stream)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BusUnavailable(f"could not read stream {stream}: {exc!r}") from exc
        try:
            pending = int((await psub.consumer_info()).num_pending or 0)
            idle_fetches = 0
            while pending > 0:
                try:
                    # Exactly what is pending (up to a batch): a fetch for more would wait out its expiry.
                    messages = await psub.fetch(
                        min(pending, READ_BATCH), timeout=self.request_timeout_seconds
                    )
                except TimeoutError:
                    idle_fetches += 1
                    if idle_fetches >= 3:
                        raise BusUnavailable(
                            f"stream {stream} stopped delivering with {pending} messages pending"
                        ) from None
                    pending = int((await psub.consumer_info()).num_pending or 0)
                    continue
                idle_fetches = 0
                for msg in messages:
                    yield _message_of(topic, msg)
                    if int(msg.metadata.sequence.stream) >= last_seq:
                        return
                    pending = _num_pending(msg)
        except (nats.errors.Error, OSError) as exc:
            raise BusUnavailable(f"reading stream {stream} failed: {exc!r}") from exc
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(js.delete_consumer(stream, name), self.request_timeout_seconds)

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
        if self._closed:
            raise BusUnavailable("the NATS bus is closed")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        subscription = _NatsSubscription(
            self,
            topic,
            group,
            handler,
            max_attempts=max_attempts,
            retry_backoff_seconds=retry_backoff_seconds,
            kinds=kinds,
        )
        self._subscriptions.add(subscription)
        await subscription.start()
        return subscription


def _first_unacked(pull: ConsumerInfo | None) -> int | None:
    """Where a push consumer replacing this pull consumer starts: the first stream sequence it had
    not acknowledged for sure (None: from the beginning, there was none)."""
    if pull is None:
        return None
    return int(pull.ack_floor.stream_seq or 0) + 1 if pull.ack_floor else 1


class _NatsSubscription(Subscription):
    """One member of a group: a queue subscription on the deliver subject of the group's durable push
    consumer, its messages handled in lanes by key.

    Push, not pull: a pull consumer costs the server a request for every delivery when events come
    one at a time (with five consumer groups at 100 orders/s the NATS server took a fifth of a core,
    more than at twice the rate), and each member a round trip before the next message can come.
    The server bounds what is in flight (`max_ack_pending`); a member handles a key's messages one at
    a time, in the order they came, and different keys side by side (at most
    `max_concurrent_handlers` at once).
    """

    def __init__(
        self,
        bus: NatsBus,
        topic: str,
        group: str,
        handler: Handler,
        *,
        max_attempts: int,
        retry_backoff_seconds: float,
        kinds: Collection[str] | None = None,
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.handler = handler
        # The subjects the group's consumer takes: the bare topic and those of the kinds it wants.
        self.filter_subjects = (
            sorted({bus.subject(topic), *(bus.kind_subject(topic, kind) for kind in kinds)})
            if kinds is not None
            else bus.stream_subjects(topic)
        )
        self.max_attempts = max_attempts
        self.retry_backoff_seconds = retry_backoff_seconds
        self.stream = bus.stream_name(topic)
        # The pull consumer a group had before it was a push one (its position is carried over).
        self.pull_durable = _sanitize(group)
        self.durable = f"{self.pull_durable}{PUSH_SUFFIX}"
        self._sub: JetStreamContext.PushSubscription | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._lanes: dict[str, deque[Msg]] = {}
        self._lane_tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(bus.max_concurrent_handlers)
        # Handed to this member and not yet acknowledged: kept alive with progress acks meanwhile.
        self._unacked: dict[int, Msg] = {}  # by id(): a Msg is not hashable
        self._last_check = time.monotonic()
        self._log = log.bind(topic=topic, group=group)

    async def start(self) -> None:
        if self.bus.connected:
            # Bind now when we can, so that a consumer exists (and starts from the beginning of the
            # stream) before subscribe() returns; otherwise the loop binds once connected.
            try:
                self._sub = await self._bind()
            except BusUnavailable as exc:
                self._log.warning("nats_bind_deferred", error=str(exc))
        self._task = asyncio.create_task(self._run(), name=f"nats-sub-{self.stream}-{self.durable}")
        self._keepalive_task = asyncio.create_task(
            self._keepalive(), name=f"nats-keepalive-{self.stream}-{self.durable}"
        )

    # -- the consumer ---------------------------------------------------------------------------
    def _config(self, deliver_subject: str, start_seq: int | None) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            deliver_subject=deliver_subject,
            deliver_group=self.durable,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start_seq else DeliverPolicy.ALL,
            opt_start_seq=start_seq,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.bus.ack_wait_seconds,
            # Unlimited redelivery on the server: retries and dead-lettering are ours (base.py), so a
            # message is never silently dropped by the broker after max_deliver.
            max_deliver=-1,
            max_ack_pending=self.bus.max_ack_pending,
            filter_subjects=self.filter_subjects,
        )

    async def _bind(self) -> JetStreamContext.PushSubscription:
        js = self.bus._connected_js()
        await self.bus.ensure_topics([self.topic])
        try:
            pull = await self._pull_consumer(js)
            try:
                existing = await js.consumer_info(self.stream, self.durable)
            except nats.js.errors.NotFoundError:
                config = self._config(self.deliver_subject(), _first_unacked(pull))
            else:
                # Update what may be updated (ack_wait, filters...), keeping where it delivers.
                config = self._config(existing.config.deliver_subject or self.deliver_subject(), None)
                config = replace(
                    config,
                    deliver_policy=existing.config.deliver_policy,
                    opt_start_seq=existing.config.opt_start_seq,
                )
            try:
                # Racing members create the same consumer: the server takes the same config twice.
                await js.add_consumer(self.stream, config=config)
            except nats.js.errors.BadRequestError as exc:
                # An existing consumer whose fixed fields differ: keep using it as it is.
                self._log.warning("nats_consumer_config_kept", consumer=self.durable, error=str(exc))
                config = (await js.consumer_info(self.stream, self.durable)).config
            if pull is not None:
                await self._retire_pull_consumer(js)
            return await js.subscribe_bind(
                stream=self.stream, consumer=self.durable, config=config, manual_ack=True
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            if isinstance(exc, nats.js.errors.APIError) and not isinstance(
                exc, nats.js.errors.ServiceUnavailableError | nats.js.errors.NotFoundError
            ):
                raise
            raise BusUnavailable(f"could not bind consumer {self.durable} on {self.stream}: {exc!r}") from exc

    def deliver_subject(self) -> str:
        """Where the group's consumer delivers: the same for every member (they are one queue group)."""
        return f"{DELIVER_PREFIX}.{self.stream}.{self.durable}"

    async def _pull_consumer(self, js: JetStreamContext) -> ConsumerInfo | None:
        """The group's consumer from before it was a push one, if there still is one."""
        try:
            info = await js.consumer_info(self.stream, self.pull_durable)
        except nats.js.errors.NotFoundError:
            return None
        return None if info.config.deliver_subject else info  # a push consumer is not ours to retire

    async def _retire_pull_consumer(self, js: JetStreamContext) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(self.stream, self.pull_durable)
            self._log.info("nats_pull_consumer_retired", consumer=self.pull_durable)

    async def _drop_sub(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _consumer_gone(self) -> bool:
        """Every few seconds while idle: does the consumer still exist (a broker restarted without
        its data forgets it, and a push subscription then just stays silent)?"""
        if time.monotonic() - self._last_check < CONSUMER_CHECK_SECONDS:
            return False
        self._last_check = time.monotonic()
        try:
            await self.bus._connected_js().consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            return True
        except (BusUnavailable, nats.errors.Error, OSError, TimeoutError):
            return False
        return False

    # -- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            if not self.bus.connected:
                await self._pause(0.25)
                continue
            try:
                if self._sub is None:
                    self._sub = await self._bind()
                msg = await self._sub.next_msg(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                failures = 0
                if await self._consumer_gone():
                    self._log.warning("nats_consumer_gone", consumer=self.durable)
                    await self._drop_sub()
                continue
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    self._log.warning("nats_receive_failed", error=repr(exc), failures=failures)
                await self._drop_sub()
                await self._pause(min(5.0, 0.1 * 2**failures))
                continue
            failures = 0
            self._dispatch(msg)

    def _dispatch(self, msg: Msg) -> None:
        """Queue the message on its key's lane; a lane without a task gets one."""
        self._unacked[id(msg)] = msg
        key = (msg.headers or {}).get(KEY_HEADER, "")
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(msg)
            return
        lane = self._lanes[key] = deque([msg])
        task = asyncio.create_task(self._drain(key, lane), name=f"nats-lane-{self.durable}")
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def _drain(self, key: str, lane: deque[Msg]) -> None:
        """Handle a key's messages in the order they came; the lane goes once it is empty."""
        try:
            while lane and not self._stopping.is_set():
                msg = lane[0]
                async with self._slots:
                    await self._handle(msg)
                lane.popleft()
                self._unacked.pop(id(msg), None)
        finally:
            if self._lanes.get(key) is lane and (not lane or self._stopping.is_set()):
                del self._lanes[key]
            # Left unacknowledged when stopping: JetStream hands them out again after ack_wait.

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _handle(self, msg: Msg) -> None:
        try:
            delivered = int(msg.metadata.num_delivered)
        except Exception:
            delivered = 1
        message = _message_of(self.topic, msg, delivered)
        result = await deliver_with_retries(
            self.handler,
            message,
            max_attempts=self.max_attempts,
            retry_backoff_seconds=self.retry_backoff_seconds,
            stopping=self._stopping,
            handler_timeout_seconds=self.bus.handler_timeout_seconds,
        )
        if result.outcome is DeliveryOutcome.HANDLED:
            await self._ack(msg)
        elif result.outcome is DeliveryOutcome.FAILED:
            if await self._dead_letter(message, result):
                await self._ack(msg)
        # ABANDONED: stopping; left unacknowledged on purpose.

    async def _dead_letter(self, message: Message, result: DeliveryResult) -> bool:
        return await park_on_dead_letter_topic(
            self.bus, self.topic, self.group, message, result, self._stopping, self._log
        )

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack()
        except Exception as exc:
            # The message comes back after ack_wait; consumers are idempotent.
            self._log.warning("nats_ack_failed", error=repr(exc))

    async def _keepalive(self) -> None:
        """Progress acks for what this member holds while it works through it."""
        interval = max(0.2, self.bus.ack_wait_seconds / 3)
        while not self._stopping.is_set():
            await self._pause(interval)
            if self._stopping.is_set() or not self.bus.connected:
                continue
            for msg in list(self._unacked.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def stop(self) -> None:
        if self._stopping.is_set() and self._task is None:
            return
        self._stopping.set()
        await self._drop_sub()  # nothing more is delivered to this member
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        if self._lane_tasks:
            # The messages being handled are finished first (a lane stops after its current one).
            _, pending = await asyncio.wait(set(self._lane_tasks), timeout=self.bus.shutdown_grace_seconds)
            if pending:
                self._log.warning("nats_handler_cancelled_on_stop", grace=self.bus.shutdown_grace_seconds)
                for lane_task in pending:
                    lane_task.cancel()
                await asyncio.wait(pending)
        keepalive, self._keepalive_task = self._keepalive_task, None
        if keepalive is not None:
            keepalive.cancel()
            await asyncio.wait({keepalive})
        self.bus._subscriptions.discard(self)


def _message_of(topic: str, msg: Msg, delivery_attempt: int = 1) -> Message:
    """A JetStream message as the bus hands it out: the key from its header, NATS' own headers dropped."""
    headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")}
    key = headers.pop(KEY_HEADER, "")
    return Message(topic=topic, key=key, value=msg.data, headers=headers, delivery_attempt=delivery_attempt)


def _num_pending(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_pending or 0)
    except Exception:
        return 0
