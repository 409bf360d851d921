"""Reading a topic's stream back (`read_retained`): what a read model is rebuilt from."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from sandwich.platform.bus.base import BusUnavailable, Message
from sandwich.platform.bus.nats.wire import message_of, num_pending

if TYPE_CHECKING:
    from sandwich.platform.bus.nats.bus import NatsBus

READ_BATCH = 256
"""Messages per fetch when a topic is read back (`read_retained`)."""


async def read_stream(bus: NatsBus, topic: str) -> AsyncIterator[Message]:
    """Every message the topic's stream still holds, oldest first, then stop.

    Read through a throw-away pull consumer: no durable name, no acknowledgements, kept in memory,
    deleted when the read ends (or by the server after a minute of inactivity, should this
    process die first), so no group's position moves. The read ends at the stream's last
    sequence as it was when it began; it ends sooner if the consumer has nothing pending (the
    oldest messages may age out while we read).
    """
    js = bus._connected_js()
    stream = bus.stream_name(topic)
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
        filter_subjects=bus.stream_subjects(topic),
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
        fetched = _fetch_up_to(psub, topic, stream, last_seq, bus.request_timeout_seconds)
        async with contextlib.aclosing(fetched):
            async for message in fetched:
                yield message
    except (nats.errors.Error, OSError) as exc:
        raise BusUnavailable(f"reading stream {stream} failed: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await psub.unsubscribe()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(js.delete_consumer(stream, name), bus.request_timeout_seconds)


async def _fetch_up_to(
    psub: JetStreamContext.PullSubscription, topic: str, stream: str, last_seq: int, timeout: float
) -> AsyncGenerator[Message, None]:
    """The consumer's messages up to stream sequence `last_seq`, or until it has none pending."""
    pending = int((await psub.consumer_info()).num_pending or 0)
    idle_fetches = 0
    while pending > 0:
        try:
            # Exactly what is pending (up to a batch): a fetch for more would wait out its expiry.
            messages = await psub.fetch(min(pending, READ_BATCH), timeout=timeout)
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
            yield message_of(topic, msg)
            if int(msg.metadata.sequence.stream) >= last_seq:
                return
            pending = num_pending(msg)
