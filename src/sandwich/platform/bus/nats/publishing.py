"""Publishing to JetStream: one message waiting for its PubAck, or a batch pipelined.

`publish` is a JetStream publish that waits for the PubAck, i.e. for the stream to have stored the
message; `publish_many` writes a whole batch before it collects the PubAcks. A subject no stream
takes (the topic was never created, or deleted) gets its stream made, as a Kafka broker with
auto-creation would, and the publish is made again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import Header, PubAck

from sandwich.platform.bus.base import BusUnavailable, Outgoing, PublishResult
from sandwich.platform.bus.nats.wire import KEY_HEADER, MSG_ID_HEADER

if TYPE_CHECKING:
    from sandwich.platform.bus.nats.bus import NatsBus

NO_RESPONDERS_STATUS = "503"
"""The status of the reply NATS sends itself when no stream takes a subject (nats.js.client's)."""


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


async def publish_one(
    bus: NatsBus, topic: str, key: str, value: bytes, headers: dict[str, str] | None
) -> None:
    """`NatsBus.publish`: the message key travels in a header (JetStream has no key of its own)."""
    js = bus._connected_js()
    subject = bus.subject(topic)
    message_headers = {**(headers or {}), KEY_HEADER: key}
    timeout = bus.request_timeout_seconds
    try:
        try:
            await js.publish(subject, value, timeout=timeout, headers=message_headers)
        except nats.js.errors.NoStreamResponseError:
            # Nobody stores this subject: the topic was never created (or was deleted). Create
            # it, as a Kafka broker with auto-creation would, and publish again.
            bus._known_streams.discard(bus.stream_name(topic))
            await bus._ensure_stream(topic)
            await js.publish(subject, value, timeout=timeout, headers=message_headers)
    except BusUnavailable:
        raise
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise BusUnavailable(f"NATS did not acknowledge a publish to {subject}: {exc!r}") from exc


async def publish_batch(
    bus: NatsBus, messages: Sequence[Outgoing], *, ensured: bool = False
) -> PublishResult:
    """`NatsBus.publish_many`: write the whole batch to the connection in order, then collect the
    PubAcks.

    One round trip per batch instead of one per message. The messages leave in order on one
    connection, so the stream stores them in order; if one is not acknowledged, only the ones
    before it count as published. Each carries `Nats-Msg-Id`, so the ones after it that the
    stream did store are dropped as duplicates when the batch is published again (within the
    stream's duplicate window, two minutes by default).
    """
    if not messages:
        return PublishResult(0)
    try:
        bus._connected_js()
    except BusUnavailable as exc:
        return PublishResult(0, exc)
    publisher = bus._publisher
    assert publisher is not None  # set with the JetStream context, cleared with it
    acks: list[asyncio.Future[PubAck]] = []
    error: BusUnavailable | None = None
    try:
        for message in messages:
            headers = {**message.headers, KEY_HEADER: message.key}
            if message.message_id:
                headers[MSG_ID_HEADER] = message.message_id
            acks.append(
                await publisher.publish(bus.kind_subject(message.topic, message.kind), message.value, headers)
            )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        error = BusUnavailable(f"NATS did not take a publish: {exc!r}")
    acknowledged, ack_error = await _collect_acks(acks, bus.request_timeout_seconds)
    for ack in acks[acknowledged:]:
        ack.cancel()  # frees the client's slot for an acknowledgement that is not awaited
    if isinstance(ack_error, nats.js.errors.NoStreamResponseError) and not ensured:
        return await _ensure_streams_and_publish_rest(bus, messages, acknowledged)
    if ack_error is not None:
        error = BusUnavailable(f"NATS did not acknowledge a publish: {ack_error!r}")
    return PublishResult(acknowledged, error if acknowledged < len(messages) else None)


async def _ensure_streams_and_publish_rest(
    bus: NatsBus, messages: Sequence[Outgoing], acknowledged: int
) -> PublishResult:
    """Nobody stores a subject of the batch: the topic was never created (or was deleted), or its
    stream is from before kinds had subjects. Create or update the streams, then publish the rest."""
    rest = messages[acknowledged:]
    try:
        for topic in dict.fromkeys(message.topic for message in rest):
            bus._known_streams.discard(bus.stream_name(topic))
            await bus._ensure_stream(topic)
    except BusUnavailable as exc:
        return PublishResult(acknowledged, exc)
    again = await publish_batch(bus, rest, ensured=True)
    return PublishResult(acknowledged + again.acknowledged, again.error)


async def _collect_acks(
    acks: list[asyncio.Future[PubAck]], timeout_seconds: float
) -> tuple[int, BaseException | None]:
    """How many leading acknowledgements arrived in time, and what stopped the count.

    One wait for the batch: a `wait_for` per acknowledgement was a turn of the loop apiece."""
    if acks:
        await asyncio.wait(acks, timeout=timeout_seconds)
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
