"""What a member of a consumer group does with a message, the same on every broker.

An adapter's member adds only how messages arrive (a push subscription's lanes, a Kafka consumer's
polls) and how they are acknowledged (an ack, a committed offset); what happens between is written
here once: the handler runs with retries in place (`deliver_with_retries`), a message it gave up on
is parked on the dead-letter topic (`park_on_dead_letter_topic`), and a stop request leaves the
message unacknowledged so that it comes back. The adapters call `_settle` straight from their
consume loops, so this adds no await per message to what they did before.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sandwich.platform.bus.base import (
    DeliveryOutcome,
    EventBus,
    Membership,
    Message,
    Subscription,
    deliver_with_retries,
    park_on_dead_letter_topic,
)


class GroupMember(Subscription):
    """One member of `membership.group` on `membership.topic`: what it was asked for, the signal to
    stop, and the settling of each message; the adapter's subclass feeds it and acknowledges."""

    def __init__(
        self,
        bus: EventBus,
        membership: Membership,
        *,
        handler_timeout_seconds: float | None,
        log: Any,
    ) -> None:
        self.topic = membership.topic
        self.group = membership.group
        self.handler = membership.handler
        self.max_attempts = membership.max_attempts
        self.retry_backoff_seconds = membership.retry_backoff_seconds
        self.handler_timeout_seconds = handler_timeout_seconds
        self._dead_letters_to = bus
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = log.bind(topic=self.topic, group=self.group)

    async def _settle(self, message: Message) -> bool:
        """Deliver `message` with retries; True when it may be acknowledged: the handler returned,
        or it gave up and the message is parked on the dead-letter topic. False when the member is
        stopping: the message is left unacknowledged on purpose and is delivered again."""
        result = await deliver_with_retries(
            self.handler,
            message,
            max_attempts=self.max_attempts,
            retry_backoff_seconds=self.retry_backoff_seconds,
            stopping=self._stopping,
            handler_timeout_seconds=self.handler_timeout_seconds,
        )
        if result.outcome is DeliveryOutcome.HANDLED:
            return True
        if result.outcome is DeliveryOutcome.FAILED:
            return await park_on_dead_letter_topic(
                self._dead_letters_to, self.topic, self.group, message, result, self._stopping, self._log
            )
        return False  # ABANDONED: stopping

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if the member is asked to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _warn_now_and_then(self, event: str, exc: BaseException, failures: int) -> None:
        """Log the first of a run of failures and every 20th after it: a broker that is away for
        minutes makes a loop fail every few seconds, which is one line, not hundreds."""
        if failures == 1 or failures % 20 == 0:
            self._log.warning(event, error=repr(exc), failures=failures)
