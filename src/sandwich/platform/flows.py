"""Who consumes which topic: the wiring the `sync` flow needs to push events over HTTP.

In the broker flows each consumer subscribes by itself; without a broker the publisher must know
its consumers, which is exactly the coupling ADR 004 accepts. One table, next to the switch.
"""

from __future__ import annotations

from sandwich.platform.events import TOPIC_ORDER_EVENTS, TOPIC_USER_EVENTS

SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    # order_info and notifications first: they are what the customer sees in the answer's wake.
    TOPIC_ORDER_EVENTS: ("order_info", "notifications", "kitchen", "delivery", "basket"),
    TOPIC_USER_EVENTS: ("billing",),
}
