"""The bus interface every adapter fills.

Semantics every adapter keeps (the shared contract test suite checks them):
- `publish` returns only once the broker has durably accepted the message (so the outbox relay
  may mark it published); it raises `BusUnavailable` otherwise.
- Messages with the same key are delivered to a group in the order they were published.
- Subscribers with the same `group` share the work; different groups each get every message.
- Delivery is at-least-once: a message is acknowledged only after the handler returned. A handler that
  raises is retried with backoff; after `max_attempts` failed attempts the message is parked on
  `dead_letter_topic(topic)` with the error, and acknowledged, so it never blocks its key forever.
- A message handed out but never acknowledged (the consumer died) is delivered again.
- `read_retained` reads what the broker still keeps of a topic, oldest first, outside of any group
  (no position is stored or moved): what a read model is rebuilt from (`sandwich replay`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from sandwich.platform.observability import EVENTS_DEAD_LETTERED

_log = structlog.get_logger("sandwich.bus")


class BusUnavailable(RuntimeError):
    """The broker did not accept a publish: the caller keeps the message and tries later."""


@dataclass(frozen=True)
class Message:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # How many times this message has been handed to this group (1 on first delivery), where known.
    delivery_attempt: int = 1


Handler = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Outgoing:
    """One message of a `publish_many` batch.

    `message_id` names the message for the broker's own de-duplication where it has one (JetStream's
    `Nats-Msg-Id`): a batch published again after a partial failure is then not stored twice.
    """

    topic: str
    key: str
    value: bytes
    message_id: str = ""
    kind: str = ""
    """What kind of event this is (an order's status), for brokers that route by it (see subscribe)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with the message: the W3C trace context of its PRODUCER span (platform/tracing.py)."""


@dataclass(frozen=True)
class PublishResult:
    """How a batch went: the first `acknowledged` messages are stored; `error` says why the rest not."""

    acknowledged: int
    error: BusUnavailable | None = None


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


_DLQ_SUFFIX = dead_letter_topic("")


def is_dead_letter_topic(topic: str) -> bool:
    return topic.endswith(_DLQ_SUFFIX)


def with_dead_letters(topics: Iterable[str]) -> list[str]:
    """The topics plus their dead-letter topics (a dead-letter topic gets none of its own), in order,
    each once: what `ensure_topics` creates."""
    result: list[str] = []
    for topic in topics:
        for name in (topic, *(() if is_dead_letter_topic(topic) else (dead_letter_topic(topic),))):
            if name not in result:
                result.append(name)
    return result


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop consuming; a message being handled is finished first, nothing is acknowledged after."""


@dataclass(frozen=True)
class Membership:
    """What a `subscribe` call asked for: a member of `group` on `topic`, and how it retries."""

    topic: str
    group: str
    handler: Handler
    max_attempts: int
    retry_backoff_seconds: float
    kinds: Collection[str] | None = None


class EventBus(abc.ABC):
    """A broker connection owned by one process."""

    name: str = "bus"

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ensure_topics(self, topics: list[str]) -> None:
        """Create the topics (and their dead-letter topics) if they do not exist yet."""

    @abc.abstractmethod
    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Publish and wait for the broker's acknowledgement; raise BusUnavailable on failure."""

    async def publish_many(self, messages: Sequence[Outgoing]) -> PublishResult:
        """Publish a batch in order and say how many of its leading messages the broker stored.

        This default publishes one at a time, each waiting for its acknowledgement; adapters that
        can pipeline (send all, then collect the acknowledgements) override it, which is what makes
        an outbox relay keep up with a busy service: one round trip per batch instead of per event.
        """
        for index, message in enumerate(messages):
            try:
                await self.publish(message.topic, message.key, message.value, dict(message.headers))
            except BusUnavailable as exc:
                return PublishResult(index, exc)
        return PublishResult(len(messages))

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
        """Start delivering the topic's messages to `handler` as a member of `group`.

        `kinds` narrows what the group needs: a broker that routes by kind (NATS: a subject per kind,
        filtered on the server) then delivers only the messages of those kinds and the ones published
        without a kind; one that cannot (Kafka) delivers everything, so the handler must still skip
        what it does not want. Either way per-key order holds for what is delivered.

        The arguments are checked here once; the adapter's `_join` starts the member.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        return await self._join(Membership(topic, group, handler, max_attempts, retry_backoff_seconds, kinds))

    @abc.abstractmethod
    async def _join(self, membership: Membership) -> Subscription:
        """Start a member of `membership.group` on `membership.topic` (its arguments are checked)."""

    @abc.abstractmethod
    async def healthy(self) -> bool:
        """True when the broker answers (used by /health/ready)."""

    async def read_retained(self, topic: str) -> AsyncIterator[Message]:
        """Every message the broker still retains for the topic, from the oldest, then stop.

        Per-key order is kept (messages of one key come in publish order; across keys the adapter
        may interleave). The read ends at the end of the topic as it was when the read began, so it
        terminates on a busy topic; what is published meanwhile may or may not be included. A topic
        that does not exist yields nothing. No group is involved: nothing is acknowledged and no
        consumer's position moves. Raises `BusUnavailable` when the broker cannot be read.

        An adapter that cannot read its topics back (a broker without retention) keeps this
        default, which says so.
        """
        raise NotImplementedError(f"the {self.name} bus cannot read a topic's retained messages")
        yield  # pragma: no cover - makes this an async generator, like the adapters' versions


# --- Shared by the adapters -------------------------------------------------------------------------
# The retry/dead-letter rules are part of the contract, so they live here once instead of being
# re-implemented (and drifting) in every adapter.

# Headers a parked message carries on the dead-letter topic (the original headers are kept as well).
DLQ_HEADER_ORIGINAL_TOPIC = "x-dlq-original-topic"
DLQ_HEADER_GROUP = "x-dlq-group"
DLQ_HEADER_ERROR = "x-dlq-error"
DLQ_HEADER_ATTEMPTS = "x-dlq-attempts"
DLQ_HEADER_FAILED_AT = "x-dlq-failed-at"


class DeliveryOutcome(enum.Enum):
    HANDLED = "handled"  # the handler returned: acknowledge
    FAILED = "failed"  # attempts used up: park on the dead-letter topic, then acknowledge
    ABANDONED = "abandoned"  # the subscription is stopping: leave unacknowledged, it comes back


@dataclass(frozen=True)
class DeliveryResult:
    outcome: DeliveryOutcome
    attempts: int
    error: str = ""


def retry_delay(attempt: int, base_seconds: float, cap_seconds: float = 30.0) -> float:
    """Exponential backoff with jitter after the `attempt`-th failure (1-based)."""
    delay = min(cap_seconds, base_seconds * (2 ** (attempt - 1)))
    return delay * (0.5 + random.random() / 2)


async def deliver_with_retries(
    handler: Handler,
    message: Message,
    *,
    max_attempts: int,
    retry_backoff_seconds: float,
    stopping: asyncio.Event,
    handler_timeout_seconds: float | None = None,
) -> DeliveryResult:
    """Run `handler` on `message`, retrying in place, and say what the adapter must do with it.

    Retrying in place (instead of re-queueing) keeps the key's order: nothing behind the message is
    handed out while it is retried. `message.delivery_attempt` counts earlier deliveries that were
    never acknowledged (a consumer that died mid-handling), so a message that keeps killing its
    consumer is parked too instead of looping forever. A stop request ends the backoff early and
    leaves the message unacknowledged: it is delivered again, never lost.
    """
    attempt = max(1, message.delivery_attempt)
    if attempt > max_attempts:
        return DeliveryResult(
            DeliveryOutcome.FAILED,
            attempt - 1,
            f"delivered {attempt - 1} times without being acknowledged (the consumer stopped or died)",
        )
    while True:
        try:
            current = (
                message if attempt == message.delivery_attempt else replace(message, delivery_attempt=attempt)
            )
            if handler_timeout_seconds is None:
                await handler(current)
            else:
                await asyncio.wait_for(handler(current), handler_timeout_seconds)
            return DeliveryResult(DeliveryOutcome.HANDLED, attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            timed_out = isinstance(exc, TimeoutError) and handler_timeout_seconds is not None
            if timed_out:
                error = f"handler timed out after {handler_timeout_seconds}s"
            else:
                error = f"{type(exc).__name__}: {exc}"
            _log.warning(
                "bus_handler_failed",
                topic=message.topic,
                key=message.key,
                attempt=attempt,
                max_attempts=max_attempts,
                error=error,
                exc_info=not timed_out,
            )
            if attempt >= max_attempts:
                return DeliveryResult(DeliveryOutcome.FAILED, attempt, error[:2000])
        try:
            await asyncio.wait_for(stopping.wait(), retry_delay(attempt, retry_backoff_seconds))
            return DeliveryResult(DeliveryOutcome.ABANDONED, attempt)
        except TimeoutError:
            attempt += 1


def dead_letter_headers(message: Message, group: str, result: DeliveryResult) -> dict[str, str]:
    """The original headers plus why, where from and when the message was parked."""
    headers = dict(message.headers)
    headers.update(
        {
            DLQ_HEADER_ORIGINAL_TOPIC: message.topic,
            DLQ_HEADER_GROUP: group,
            # Header values stay on one line: NATS headers are line-oriented.
            DLQ_HEADER_ERROR: " ".join(result.error.split()) or "unknown error",
            DLQ_HEADER_ATTEMPTS: str(result.attempts),
            DLQ_HEADER_FAILED_AT: datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    )
    return headers


async def park_on_dead_letter_topic(
    bus: EventBus,
    topic: str,
    group: str,
    message: Message,
    result: DeliveryResult,
    stopping: asyncio.Event,
    log: Any,
) -> bool:
    """Park a message its handler gave up on on the topic's dead-letter topic, with why, and count it;
    the broker being away is waited out (backing off up to 5 s) until it stores the message, or the
    subscription stops (False: the message stays unacknowledged and comes back). Written once for
    every broker: a consumer acknowledges a failed message only after this returned True."""
    headers = dead_letter_headers(message, group, result)
    failures = 0
    while True:
        try:
            await bus.publish(dead_letter_topic(topic), message.key, message.value, headers)
            EVENTS_DEAD_LETTERED.labels(topic, group).inc()
            log.error(
                "bus_message_dead_lettered", key=message.key, attempts=result.attempts, error=result.error
            )
            return True
        except BusUnavailable as exc:
            failures += 1
            log.warning("bus_dead_letter_failed", broker=bus.name, error=str(exc), failures=failures)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), retry_delay(failures, 0.5, cap_seconds=5.0))
            return False
