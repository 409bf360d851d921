"""The `sync` flow's stand-in for a broker (ADR 001/004): an event is "published" by POSTing it to
every service that consumes its topic, and it counts as published only when all of them answered.

It fills the same EventBus port as NATS and Kafka, so the outbox, its relay and the consumers'
inbox work unchanged; what changes is the coupling the ADRs argue about: a consumer that is down
makes the publisher's call fail, and in `sync` that call happens inside the client's request.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import attach, detach

from sandwich.platform.bus.base import BusUnavailable, EventBus, Membership, Subscription
from sandwich.platform.flows import Push
from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.platform.tracing import context_from

EVENTS_PATH = "/internal/v1/events/{topic}"


class HttpPushBus(EventBus):
    name = "http-push"
    is_broker = False

    def __init__(self, http: ServiceClient, subscribers: Mapping[str, tuple[Push, ...]]):
        self.http = http
        self.subscribers = subscribers

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ensure_topics(self, topics: list[str]) -> None:
        return None

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        # The push is the message: its CLIENT span goes under the relay's PRODUCER span, whose
        # context the relay put in `headers`.
        token = attach(context_from(headers or {}))
        try:
            await self._push(topic, value)
        finally:
            detach(token)

    async def _push(self, topic: str, value: bytes) -> None:
        for push in self.subscribers.get(topic, ()):
            try:
                answer = await self.http.request(
                    push.service,
                    "POST",
                    push.path or EVENTS_PATH.format(topic=topic),
                    raw_body=push.body(value) if push.body else value,
                    headers={"Content-Type": "application/json"},
                    idempotent=True,  # consumers are idempotent (their inbox, or one letter per order and kind)
                )
            except ServiceUnavailable as exc:
                raise BusUnavailable(f"{push.service} did not take {topic}: {exc.reason}") from exc
            if not answer.ok:
                raise BusUnavailable(f"{push.service} refused {topic}: {answer.status}")

    async def _join(self, membership: Membership) -> Subscription:
        raise NotImplementedError(
            "in the sync flow events arrive over HTTP: see platform/app.py events_router"
        )

    async def healthy(self) -> bool:
        return True
