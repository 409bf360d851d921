"""Who consumes which topic: the wiring the `sync` flow needs to push events over HTTP.

In the broker flows each consumer subscribes by itself; without a broker the publisher must know
its consumers, which is exactly the coupling ADR 004 accepts. One table, next to the switch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from sandwich.platform.events import TOPIC_ORDER_EVENTS, TOPIC_USER_EVENTS


@dataclass(frozen=True)
class Push:
    """One consumer of a topic in the sync flow: where its events go and in which body.

    By default the envelope goes to the platform's `POST /internal/v1/events/{topic}`; a consumer
    that keeps a seeds' path of its own (notifications' `POST /api/v1/notification`) says so.
    """

    service: str
    path: str | None = None
    body: Callable[[bytes], bytes] | None = None


def notification_request(envelope: bytes) -> bytes:
    """An OrderEvent envelope as the seeds' notification request: the status and the order."""
    payload = orjson.loads(envelope)["payload"]
    return orjson.dumps({"status": payload["status"], "order": payload["order"]})


SUBSCRIBERS: dict[str, tuple[Push, ...]] = {
    # order_info and notifications first: they are what the customer sees in the answer's wake.
    TOPIC_ORDER_EVENTS: (
        Push("order_info"),
        Push("notifications", "/api/v1/notification", notification_request),
        Push("kitchen"),
        Push("delivery"),
        Push("basket"),
    ),
    TOPIC_USER_EVENTS: (Push("billing"),),
}
