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
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


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


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop consuming; a message being handled is finished first, nothing is acknowledged after."""


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

    @abc.abstractmethod
    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        *,
        max_attempts: int = 5,
        retry_backoff_seconds: float = 0.2,
    ) -> Subscription:
        """Start delivering the topic's messages to `handler` as a member of `group`."""

    @abc.abstractmethod
    async def healthy(self) -> bool:
        """True when the broker answers (used by /health/ready)."""
